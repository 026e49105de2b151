"""Federation services: fetch and pin remote tool definitions, approve a new version, install
from the marketplace, and derive the registry's run-time servers from approved tools.

Every change that alters what the registry offers ends in bump_registry_version(), after the
transaction commits, so every process rebuilds its registry from committed rows."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from mcp_core.contracts import ErrorCode, MCPError
from mcp_core.registry import bump_registry_version

from .client import RemoteMCPClient, url_problem
from .models import RemoteServer, RemoteTool
from .schemas import canonical, definition_problem, digest, operation_name

SYNC_TIMEOUT_SECONDS = 15.0


def client_for(server: RemoteServer) -> RemoteMCPClient:
    """The client of a saved registration: its calls share the process's kept session."""
    return RemoteMCPClient(
        url=server.url,
        era=server.era,
        token=server.bearer_token,
        service=server.service,
        registration=server.pk,
        timeout=server.timeout,
    )


def _bump_on_commit() -> None:
    transaction.on_commit(bump_registry_version)


@dataclass
class SyncReport:
    fetched: int = 0
    unchanged: int = 0
    new_versions: int = 0
    invalid: int = 0
    removed: int = 0


def sync_tools(server: RemoteServer, *, timeout: float | None = None) -> SyncReport:
    """Fetch the server's tool list and pin it: an unchanged tool stays as it is; a new or
    changed definition becomes a new pending (or invalid) version, the approved one staying in
    use; a tool no longer listed is marked removed and leaves the registry. Raises MCPError
    when the server cannot be listed (recorded on the server as last_sync_error)."""
    try:
        listed = client_for(server).list_tools(min(timeout or SYNC_TIMEOUT_SECONDS, server.timeout))
    except MCPError as exc:
        server.last_sync_error = exc.message
        server.last_sync_at = timezone.now()
        server.save(update_fields=["last_sync_error", "last_sync_at", "updated_at"])
        raise
    report = SyncReport(fetched=len(listed))
    changed_registry = False
    with transaction.atomic():
        locked = RemoteServer.objects.select_for_update().get(pk=server.pk)
        seen: set[str] = set()
        taken_ops: dict[str, str] = {}
        for tool in listed:
            definition = canonical(tool)
            name = definition.get("name")
            if not isinstance(name, str) or name in seen:
                report.invalid += 1
                continue
            seen.add(name)
            problem = definition_problem(definition)
            op = operation_name(name)
            if problem is None and taken_ops.get(op, name) != name:
                problem = f"name: its operation name {op!r} is taken by the tool {taken_ops[op]!r}"
            taken_ops.setdefault(op, name)
            latest = locked.tools.filter(name=name).order_by("-version").first()
            tool_digest = digest(definition)
            if latest is not None and latest.digest == tool_digest:
                report.unchanged += 1
                if latest.removed or locked.tools.filter(name=name, removed=True).exists():
                    locked.tools.filter(name=name, removed=True).update(removed=False)
                    changed_registry = True
                continue
            RemoteTool.objects.create(
                server=locked,
                name=name[:128],
                operation=op[:128],
                version=(latest.version + 1) if latest else 1,
                digest=tool_digest,
                definition=definition,
                status=RemoteTool.Status.INVALID if problem else RemoteTool.Status.PENDING,
                problem=problem or "",
            )
            if problem:
                report.invalid += 1
            else:
                report.new_versions += 1
        gone = locked.tools.exclude(name__in=seen).filter(removed=False)
        report.removed = len({t.name for t in gone})
        if gone.filter(status=RemoteTool.Status.APPROVED).exists():
            changed_registry = True
        gone.update(removed=True)
        locked.last_sync_at = timezone.now()
        locked.last_sync_error = ""
        locked.save(update_fields=["last_sync_at", "last_sync_error", "updated_at"])
        if changed_registry:
            _bump_on_commit()
    return report


def approve_tool(tool: RemoteTool, user=None) -> RemoteTool:
    """Pin this version: it replaces the approved one (if any) in every process's registry."""
    if tool.status == RemoteTool.Status.INVALID:
        raise MCPError(ErrorCode.VALIDATION_ERROR, f"{tool.name} v{tool.version} is invalid: {tool.problem}")
    with transaction.atomic():
        now = timezone.now()
        siblings = RemoteTool.objects.select_for_update().filter(server=tool.server, name=tool.name)
        siblings.filter(status=RemoteTool.Status.APPROVED).exclude(pk=tool.pk).update(
            status=RemoteTool.Status.SUPERSEDED, decided_at=now
        )
        # Older pending versions are moot once a later one is approved.
        siblings.filter(status=RemoteTool.Status.PENDING, version__lt=tool.version).update(
            status=RemoteTool.Status.SUPERSEDED, decided_at=now
        )
        tool.status = RemoteTool.Status.APPROVED
        tool.decided_at = now
        tool.decided_by = user
        tool.save(update_fields=["status", "decided_at", "decided_by"])
        _bump_on_commit()
    return tool


def reject_tool(tool: RemoteTool, user=None) -> RemoteTool:
    """Refuse this version; an approved one stays pinned."""
    if tool.status != RemoteTool.Status.PENDING:
        raise MCPError(ErrorCode.CONFLICT, f"{tool.name} v{tool.version} is {tool.status}, not pending")
    tool.status = RemoteTool.Status.REJECTED
    tool.decided_at = timezone.now()
    tool.decided_by = user
    tool.save(update_fields=["status", "decided_at", "decided_by"])
    return tool


def approved_version(tool: RemoteTool) -> RemoteTool | None:
    return (
        RemoteTool.objects.filter(server_id=tool.server_id, name=tool.name, status=RemoteTool.Status.APPROVED)
        .exclude(pk=tool.pk)
        .first()
    )


def definition_diff(tool: RemoteTool) -> str:
    """A unified diff from the approved version to this one (everything is new without one)."""
    pinned = approved_version(tool)
    before = json.dumps(pinned.definition, indent=2, sort_keys=True).splitlines() if pinned else []
    after = json.dumps(tool.definition, indent=2, sort_keys=True).splitlines()
    label = f"v{pinned.version} (approved)" if pinned else "nothing approved"
    return "\n".join(
        difflib.unified_diff(before, after, fromfile=label, tofile=f"v{tool.version}", lineterm="")
    )


def registry_changed() -> None:
    """A server's enabled flag, tenants, URL or deadline changed: rebuild after commit."""
    _bump_on_commit()


# --- marketplace --------------------------------------------------------------------------------


def streamable_remote(entry: dict[str, Any]) -> str | None:
    """The Streamable HTTP endpoint of a registry entry (server.json `remotes`), if it has one."""
    server = entry.get("server", entry)
    for remote in server.get("remotes") or []:
        if isinstance(remote, dict) and remote.get("type") == "streamable-http" and remote.get("url"):
            return str(remote["url"])
    return None


def _free_slug(name: str) -> str:
    base = re.sub(r"[^a-z0-9]", "", name.rsplit("/", 1)[-1].lower())[:24] or "remote"
    if not base[0].isalpha():
        base = f"r{base}"[:24]
    slug, n = base, 1
    while RemoteServer.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}{n}"
    return slug


def install_from_registry(entry: dict[str, Any]) -> RemoteServer:
    """A disabled registration for a marketplace entry; an operator adds the credential, syncs,
    approves its tools and enables it."""
    server = entry.get("server", entry)
    name = str(server.get("name") or "")
    url = streamable_remote(entry)
    if not name or url is None:
        raise MCPError(
            ErrorCode.VALIDATION_ERROR,
            f"{name or 'entry'}: has no streamable-http remote to install",
            details={"field": "remotes"},
        )
    problem = url_problem(url)
    if problem:
        raise MCPError(ErrorCode.VALIDATION_ERROR, problem, details={"field": "url"})
    existing = RemoteServer.objects.filter(registry_name=name).first()
    if existing is not None:
        raise MCPError(
            ErrorCode.CONFLICT,
            f"{name} is already installed as {existing.service}",
            details={"field": "name"},
        )
    return RemoteServer.objects.create(
        slug=_free_slug(name),
        title=str(server.get("title") or name)[:200],
        description=str(server.get("description") or "")[:2000],
        url=url[:500],
        source=RemoteServer.Source.MARKETPLACE,
        registry_name=name[:200],
        registry_version=str(server.get("version") or "")[:100],
        enabled=False,
    )
