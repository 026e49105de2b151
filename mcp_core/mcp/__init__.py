"""The MCP transports: the Streamable HTTP endpoint `/mcp` (django-mcpz) and its stdio bridge."""
