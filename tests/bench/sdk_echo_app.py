"""The official SDK's own server (mcp.server.MCPServer) with a trivial tool, as a stateless
Streamable HTTP ASGI app: the third column of bench_mcp. Run under uvicorn."""

from mcp.server import MCPServer

mcp = MCPServer("bench-sdk", version="1.0.0")


@mcp.tool()
def echo(text: str = "hello") -> dict:
    """Return the text unchanged."""
    return {"text": text}


app = mcp.streamable_http_app(stateless_http=True, json_response=True)
