"""Client metadata documents served over HTTPS on 127.0.0.1 by a test certificate authority."""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme


class DocumentServer:
    """Serves JSON documents by path; counts fetches; `slow` paths answer late, `huge` ones big."""

    def __init__(self, ca: trustme.CA) -> None:
        self.documents: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.fetches: dict[str, int] = {}
        self.slow: set[str] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server name
                owner.fetches[self.path] = owner.fetches.get(self.path, 0) + 1
                if self.path in owner.slow:
                    time.sleep(3)
                body, headers = owner.documents.get(self.path, (b"", {}))
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the fetcher gave up (the slow and huge cases)
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"

    def publish(self, path: str, redirect_uris: list[str], *, max_age: int = 300, **extra) -> str:
        """Publish a client's metadata document at `path`; returns its URL (the client_id)."""
        client_id = self.url(path)
        document = {
            "client_id": client_id,
            "client_name": "CIMD test client",
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            **extra,
        }
        self.documents[path] = (json.dumps(document).encode(), {"Cache-Control": f"max-age={max_age}"})
        return client_id

    def __enter__(self) -> DocumentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
