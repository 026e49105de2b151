"""Fetching a client's metadata document (Client ID Metadata Documents).

django-oauth-toolkit's SafeMetadataFetcher does the hard parts (https only, the address is
resolved and checked once and the connection goes to that address, no redirects, one deadline
for the whole fetch, a size cap, caching by Cache-Control); this subclass only adds the
OAUTH_CIMD_ALLOW_LOOPBACK switch, so that development and tests can serve a document from
127.0.0.1. Private and link-local addresses stay refused whatever the setting says.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time

import urllib3
from django.conf import settings
from oauth2_provider import cimd as dot_cimd


def _allowed(ip_text: str) -> bool:
    if dot_cimd._ip_is_public(ip_text):
        return True
    return settings.OAUTH_CIMD_ALLOW_LOOPBACK and ipaddress.ip_address(ip_text).is_loopback


def _resolve(hostname: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise dot_cimd.CIMDError(f"could not resolve client_id host: {exc}") from exc
    ips = [info[4][0] for info in infos]
    # One refused address refuses the host: a split answer must not smuggle in an internal one.
    refused = [ip for ip in ips if not _allowed(ip)]
    if refused or not ips:
        raise dot_cimd.CIMDError(f"client_id host resolves to a refused address ({refused[:1]})")
    return ips


class MetadataFetcher(dot_cimd.SafeMetadataFetcher):
    """CIMD_METADATA_FETCHER: SafeMetadataFetcher's fetch with loopback allowed on request."""

    def fetch(self, client_id):
        if not settings.OAUTH_CIMD_ALLOW_LOOPBACK:
            return super().fetch(client_id)
        parsed = dot_cimd._validate_client_id_url(client_id)
        port = parsed.port or 443
        ips = _resolve(parsed.hostname, port)
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        headers = {"Host": parsed.netloc, "Accept": "application/json, application/*+json"}
        deadline = time.monotonic() + settings.OAUTH_CIMD_TIMEOUT_SECONDS
        last_error = None
        for ip in ips:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            pool = urllib3.HTTPSConnectionPool(
                host=ip,
                port=port,
                timeout=urllib3.Timeout(connect=remaining, read=remaining, total=remaining),
                retries=False,
                maxsize=1,
                ssl_context=ssl.create_default_context(),
                server_hostname=parsed.hostname,
            )
            try:
                response = pool.urlopen("GET", path, headers=headers, redirect=False, preload_content=False)
                try:
                    return self._read_document(response)
                finally:
                    response.release_conn()
            except urllib3.exceptions.HTTPError as exc:
                last_error = exc
            finally:
                pool.close()
        raise dot_cimd.CIMDError(f"could not fetch client_id document: {last_error}")
