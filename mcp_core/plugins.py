"""Servers installed as Python packages, found through the `askpro.mcp_servers` entry point group."""

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "askpro.mcp_servers"


def plugin_server_paths() -> list[str]:
    """Dotted paths (module:attr or module.attr) of plugin servers, in a stable order."""
    paths = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        paths.append(ep.value.replace(":", "."))
    return paths
