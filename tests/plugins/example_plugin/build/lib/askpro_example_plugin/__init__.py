"""An example AskPro MCP server plugin."""
