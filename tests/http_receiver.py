"""A local HTTP receiver for notification tests: a real server on a free loopback port
that records every request and can fail the first N of them.

    with HttpReceiver(fail_first=2, fail_status=503) as rx:
        cfg = NotifierConfig(name="hook", url=rx.url + "/hook")
        ...                       # deliveries 1 and 2 get 503, the rest 200
        rx.wait_for(3)            # block until 3 requests arrived (or AssertionError)
        rx.attempts               # 3: every request, failed or not
        rx.received[-1].body      # parsed JSON of the last request (None if not JSON)
        rx.delivered              # only the requests answered 2xx
        rx.fail_first = 10**9     # change behaviour at any time: now it is "down"

`received` entries are `Received(path, body, raw, headers, status)`, where `status`
is what the receiver answered. `delay` (seconds) holds every answer back, to
exercise client timeouts. `close()` (or leaving the `with`) stops the server.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jitaccess.dev.servers import free_port


@dataclass
class Received:
    path: str
    body: object | None
    raw: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    method: str = "POST"


class HttpReceiver:
    def __init__(self, fail_first: int = 0, fail_status: int = 503, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="http-receiver", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def attempts(self) -> int:
        with self._lock:
            return len(self.received)

    @property
    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least `count` requests arrived; return them all."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} request(s) at {self.url}, got {len(self.received)}")
                self._arrived.wait(left)
            return list(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, handler: BaseHTTPRequestHandler) -> int:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._arrived:
            status = self.fail_status if len(self.received) < self.fail_first else 200
            self.received.append(
                Received(
                    path=handler.path,
                    body=body,
                    raw=raw,
                    headers=dict(handler.headers.items()),
                    status=status,
                    method=handler.command,
                )
            )
            self._arrived.notify_all()
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        rx = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                status = rx._record(self)
                if rx.delay:
                    time.sleep(rx.delay)
                payload = b'{"ok":true}' if status < 300 else b'{"error":"receiver told to fail"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            do_POST = do_PUT = do_GET = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
