"""Webhook transport: Svix-compatible signatures and one HTTP POST per attempt, to the address `targets` resolved.

No database access here: `services/delivery.py` decides when to call `post()` and records what it returns.
"""

import base64
import binascii
import contextlib
import hashlib
import hmac
import http.client
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass

import urllib3
import urllib3.connection

from notifications.conf import webhook_timeout_seconds
from notifications.targets import Target, UnsafeTarget, resolve_target

SECRET_PREFIX = "whsec_"
USER_AGENT = "openmeter-django-webhooks/1"
# Of a receiver's answer only the status and a short text excerpt are kept (and shown in attempts[].response).
RESPONSE_READ_BYTES = 1024
RESPONSE_EXCERPT_CHARS = 200
TEXT_MEDIA_TYPES = {"application/json", "application/xml", "application/x-www-form-urlencoded"}


def generate_signing_secret() -> str:
    """`whsec_` + base64 of 24 random bytes (32 characters), the form Svix and OpenMeter use."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded secret after its optional `whsec_` prefix. Raises ValueError."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"signing secret is not valid base64: {exc}") from exc


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`svix-signature` value: `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(*, secret: str, msg_id: str, body: bytes, custom: dict[str, str], now: float) -> dict[str, str]:
    timestamp = int(now)
    headers = {k: v for k, v in custom.items() if not k.lower().startswith("svix-")}  # never spoofed
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "svix-id": msg_id,
            "svix-timestamp": str(timestamp),
            "svix-signature": sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body),
        }
    )
    return headers


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    retryable: bool
    status_code: int | None
    body: str
    duration_ms: int
    error: str = ""


def post(*, url: str, headers: dict[str, str], body: bytes) -> AttemptResult:
    """One delivery attempt. 2xx = success; any other answer (redirects are not followed), a timeout or a network
    error is retryable. The URL's host is resolved and checked here, and the request goes to that address. The
    whole attempt, connecting to reading the excerpt, ends after the webhook timeout: a receiver that sends its
    answer a byte at a time (each read within the timeout) would otherwise hold the worker for as long as it likes."""
    try:
        target = resolve_target(url)
    except UnsafeTarget as exc:
        return AttemptResult(ok=False, retryable=exc.retryable, status_code=None, body="", duration_ms=0, error=str(exc))
    seconds = webhook_timeout_seconds()
    started = time.monotonic()
    conn = _connection(target, seconds)
    cut = threading.Event()
    deadline = threading.Timer(seconds, _cut, args=(conn, cut))
    deadline.start()
    try:
        conn.request("POST", target.url.request_uri, body=body, headers={**headers, "Host": target.url.host_header},
                     preload_content=False)
        response = conn.getresponse()
        excerpt = response_excerpt(response.headers.get("Content-Type", ""), response.read(RESPONSE_READ_BYTES))
    except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        error = f"timed out: no answer within {seconds} s" if cut.is_set() else str(exc) or type(exc).__name__
        return AttemptResult(ok=False, retryable=True, status_code=None, body="", duration_ms=elapsed, error=error)
    except ValueError as exc:  # a header the HTTP client refuses to send (a channel saved before values were checked)
        return AttemptResult(ok=False, retryable=False, status_code=None, body="", duration_ms=0,
                             error=f"request not sent: {exc}")
    finally:
        deadline.cancel()
        conn.close()
    elapsed = int((time.monotonic() - started) * 1000)
    if 200 <= response.status < 300:
        return AttemptResult(ok=True, retryable=False, status_code=response.status, body=excerpt, duration_ms=elapsed)
    return AttemptResult(
        ok=False,
        retryable=True,
        status_code=response.status,
        body=excerpt,
        duration_ms=elapsed,
        error=f"receiver answered HTTP {response.status}",
    )


def _connection(target: Target, seconds: float) -> urllib3.connection.HTTPConnection:
    """A connection to the resolved address. HTTPS sends the URL's host name as SNI and checks the certificate
    against it, with the system's CA certificates (SSL_CERT_FILE and SSL_CERT_DIR apply)."""
    if target.url.scheme == "https":
        return urllib3.connection.HTTPSConnection(
            target.address, target.url.port, timeout=seconds, server_hostname=target.url.host,
            ssl_context=ssl.create_default_context(),
        )
    return urllib3.connection.HTTPConnection(target.address, target.url.port, timeout=seconds)


def _cut(conn: urllib3.connection.HTTPConnection, cut: threading.Event) -> None:
    """The attempt's deadline: shut the socket down, so that the read in progress ends at once."""
    cut.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by the attempt itself
            sock.shutdown(socket.SHUT_RDWR)


def response_excerpt(content_type: str, raw: bytes) -> str:
    """What is kept of a receiver's answer: the start of a textual body, printable characters only, white space
    runs as one space, at most RESPONSE_EXCERPT_CHARS characters. Other bodies (images, binary) keep nothing."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and not (media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES
                           or media_type.endswith(("+json", "+xml"))):
        return ""
    text = raw.decode("utf-8", errors="replace")
    printable = "".join(c if c.isprintable() and c != "\ufffd" else " " for c in text)
    return " ".join(printable.split())[:RESPONSE_EXCERPT_CHARS]
