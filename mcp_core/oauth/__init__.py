"""OAuth 2.1 for MCP clients: /mcp as a protected resource, this server as its authorization
server (django-oauth-toolkit underneath), tokens that act as the consenting user (docs/oauth.md)."""
