"""A real HTTP webhook receiver on loopback, started per test."""

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # Answers in order (a status code or a whole Reply); once used up, 200. 0 = answer 200 only after 2 s (a
    # client timeout).
    script: list[int | Reply] = field(default_factory=list)
    # If set, each request waits for this event before answering (`started` is set when one arrives).
    hold: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)

    def verify(self, request: Received, secret: str) -> bool:
        """Svix verification as a receiver does it: HMAC-SHA256 over `id.timestamp.body` with the decoded secret."""
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{request.headers['svix-id']}.{request.headers['svix-timestamp']}.".encode() + request.body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return any(sig.split(",", 1)[1] == expected for sig in request.headers["svix-signature"].split(" "))


@contextmanager
def running_receiver(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (HTTPS with `tls`), until the block ends."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            state.started.set()
            if state.hold is not None:
                state.hold.wait(10)
            reply = state.script.pop(0) if state.script else 200
            if reply == 0:
                time.sleep(2)
                reply = 200
            if isinstance(reply, int):
                reply = Reply(reply, body=b'{"ok": true}' if reply == 200 else b"try again later")
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state
