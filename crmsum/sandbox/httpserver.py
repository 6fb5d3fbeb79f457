"""Shared plumbing for the loopback HTTP emulators (amoCRM, Telegram Bot API, OpenAI-compatible LLM).

Each emulator subclasses `JsonHandler`, implements `route()`, and is started with `serve()`,
which returns a running server whose `.url` points at it. Standard library only, so an
emulator starts in milliseconds and needs nothing installed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class HttpError(Exception):
    """Raised inside a handler to answer with a problem+json error."""

    def __init__(self, status: int, title: str, detail: str = "", headers: dict[str, str] | None = None,
                 body: dict | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.body = body


class JsonHandler(BaseHTTPRequestHandler):
    """Parses the request, calls `route`, writes JSON; subclasses get `self.app` (the server's state)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive answers would otherwise stall ~40 ms on delayed ACKs
    server_version = "crmsum-emulator"

    @property
    def app(self) -> Any:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr access log
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # -- request helpers -------------------------------------------------------------------
    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> list[tuple[str, str]]:
        """Query pairs in order, repeated keys kept (bracket filters like filter[id][] repeat)."""
        return parse_qsl(urlsplit(self.path).query, keep_blank_values=True, strict_parsing=False)

    def body_bytes(self) -> bytes:
        if not hasattr(self, "_body"):
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
        return self._body

    def json_body(self) -> Any:
        raw = self.body_bytes()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise HttpError(400, "Bad Request", f"body is not JSON: {exc}") from None

    # -- responses -------------------------------------------------------------------------
    def send_json(self, status: int, payload: Any, content_type: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_empty(self, status: int = 204) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def send_problem(self, err: HttpError) -> None:
        payload = err.body or {"title": err.title, "type": "https://httpstatus.es/" + str(err.status),
                               "status": err.status, "detail": err.detail}
        ctype = "application/json" if err.body else "application/problem+json"
        self.send_json(err.status, payload, ctype, err.headers)

    def drop_connection(self) -> None:
        """Close the socket without answering (a fault the clients must survive)."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def _dispatch(self, method: str) -> None:
        # One handler instance serves every request of a keep-alive connection: forget the last body.
        self.__dict__.pop("_body", None)
        try:
            self.route(method)
        except HttpError as err:
            self.send_problem(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # an emulator bug must look like a 500, not hang the client
            self.send_problem(HttpError(500, "Internal Server Error", type(exc).__name__))
        finally:
            # An unread body (e.g. answered 401 early) would be parsed as the next request.
            if "_body" not in self.__dict__ and not self.close_connection:
                try:
                    self.body_bytes()
                except OSError:
                    self.close_connection = True

    def route(self, method: str) -> None:
        raise HttpError(404, "Not Found", self.path_only)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[JsonHandler], app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), handler)
        self.app = app
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Server":
        # A short poll interval makes stop() (shutdown) return in ~50 ms instead of 0.5 s per test.
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self.app).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@contextmanager
def serve(handler: type[JsonHandler], app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[Server]:
    """Run an emulator in a background thread for the duration of the block."""
    server = Server(handler, app, host, port).start()
    try:
        yield server
    finally:
        server.stop()
