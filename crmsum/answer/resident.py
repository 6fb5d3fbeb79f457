"""The resident answerer: a long-lived process (the bot, or `crmsum serve`) keeps its warm answer context
listening on a unix socket in the state dir, and `crmsum ask` hands it the question instead of paying
for a cold start (imports, morphology, the lake's views: ~1 s against ~15 ms for a warm answer).

    one line of JSON each way:  {"question": "...", "json": true}  ->  {"output": "..."} | {"error": "..."}

The client half imports the standard library only: it runs before anything heavy is loaded, and when
no answerer listens (or it fails before replying) the caller answers in-process as before. The socket is
the owner's alone (0600 in the 0700 state dir): its answers resolve pseudonyms to real names, exactly
as `crmsum ask` does for the operator.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import socketserver
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmsum.config import Settings

log = logging.getLogger(__name__)

SOCKET_NAME = "answer.sock"
MAX_REQUEST = 64 * 1024  # a question is capped far below this by the parser; anything longer is refused
CONNECT_TIMEOUT = 0.5
ANSWER_TIMEOUT = 600.0  # a live answer through a slow LLM; the server's own LLM timeout ends it sooner
_SUN_PATH_MAX = 104  # sockaddr_un.sun_path is 104 bytes on macOS, 108 on Linux


def socket_path(state_dir: Path) -> Path | None:
    """Where the answerer of this state dir listens, or None when the path is too long for a unix socket."""
    path = Path(state_dir).absolute() / SOCKET_NAME
    return path if len(os.fsencode(path)) < _SUN_PATH_MAX else None


# -- client ---------------------------------------------------------------------------------------
def ask(state_dir: Path, question: str, as_json: bool) -> str | None:
    """The answer as `crmsum ask` prints it, from a resident answerer; None when none answers."""
    path = socket_path(state_dir)
    if path is None or not path.exists():
        return None
    try:
        with _connect(path) as sock:
            sock.settimeout(ANSWER_TIMEOUT)
            sock.sendall(json.dumps({"question": question, "json": as_json}, ensure_ascii=False).encode() + b"\n")
            reply = json.loads(_read_line(sock, limit=None) or b"{}")
    except (OSError, ValueError):  # no answerer, a stale socket, or it died mid-answer: answer in-process
        return None
    output = reply.get("output") if isinstance(reply, dict) else None
    return output if isinstance(output, str) else None


def ask_argv(args: list[str], state_dir: Path) -> str | None:
    """`crmsum ask QUESTION [--json]` through a resident answerer; None for any other command line."""
    flags = [a for a in args if a.startswith("-")]
    words = [a for a in args if not a.startswith("-")]
    if len(words) != 1 or any(f != "--json" for f in flags) or len(flags) > 1:
        return None  # --help, a typo, a missing question: the full command line interface says what
    return ask(state_dir, words[0], as_json=bool(flags))


def _read_line(sock: socket.socket, limit: int | None) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            break
        if limit is not None and size > limit:
            raise ValueError("request too long")
    return b"".join(chunks)


# -- server ---------------------------------------------------------------------------------------
class Resident:
    """Serves `crmsum ask` from this process's answer context (one thread per connection)."""

    def __init__(self, settings: Settings, lake=None) -> None:
        self.settings, self.lake = settings, lake
        self.path = socket_path(settings.state_dir)
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self.served = 0  # questions answered (the bot's heartbeat and the tests read it)

    def start(self) -> bool:
        """Listen in a daemon thread; False when the path is unusable or another answerer already listens."""
        if self.path is None:
            log.warning("state dir path too long for a unix socket: `crmsum ask` will answer on its own")
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.exists():
            if _listening(self.path):
                log.warning("another answerer listens on %s: not starting a second", self.path)
                return False
            self.path.unlink(missing_ok=True)  # left by a process that died
        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), self._handler())
        self._server.daemon_threads = True
        os.chmod(self.path, 0o600)
        threading.Thread(target=self._server.serve_forever, name="crmsum-resident", daemon=True).start()
        log.info("answering `crmsum ask` on %s", self.path)
        return True

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            if self.path is not None:
                self.path.unlink(missing_ok=True)

    def answer(self, question: str, as_json: bool) -> str:
        """The output of `crmsum ask` for `question`, from the warm context."""
        from crmsum import answer as A

        ctx = A.get_context(self.settings, self.lake)
        result = A.answer_question(question, settings=self.settings, lake=self.lake)
        self.served += 1
        if as_json:
            return json.dumps(result.to_json(ctx.vault), ensure_ascii=False) + "\n"
        return result.display(ctx.vault) + "\n"

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        resident = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    req = json.loads(_read_line(self.request, MAX_REQUEST) or b"{}")
                    question = req.get("question") if isinstance(req, dict) else None
                    if not isinstance(question, str) or not question:
                        raise ValueError("no question")
                    reply = {"output": resident.answer(question, bool(req.get("json")))}
                except ValueError as exc:
                    reply = {"error": str(exc)}
                except Exception as exc:  # noqa: BLE001 - the client then answers on its own
                    log.exception("resident answer failed")
                    reply = {"error": type(exc).__name__}
                self.wfile.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")

        return Handler


def _connect(path: Path) -> socket.socket:
    """A connection to the answerer at `path` (OSError when nobody listens there)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def _listening(path: Path) -> bool:
    try:
        _connect(path).close()
        return True
    except OSError:
        return False


def serve(settings: Settings, stop: threading.Event | None = None, lake=None) -> None:
    """`crmsum serve`: warm the answer context, answer `crmsum ask` until `stop` is set (or Ctrl+C)."""
    from crmsum import answer as A
    from crmsum.errors import CrmsumError

    A.get_context(settings, lake).keep_warm(A.warm)
    resident = Resident(settings, lake)
    if not resident.start():
        raise CrmsumError(f"cannot answer on {resident.path or settings.state_dir}: another answerer listens there "
                          "(the bot, or `crmsum serve`), or the path is too long for a unix socket")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():  # a service manager's SIGTERM: remove the socket
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        resident.close()
