"""Small MCP servers for registry and system-check tests (never in settings.MCP_SERVERS)."""
