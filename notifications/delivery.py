"""Webhook transport: Svix-compatible signatures, the SSRF guard, and one HTTP POST per attempt.

No database access here: `services/delivery.py` decides when to call `post()` and records what it returns.
"""

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

from notifications.conf import webhook_timeout_seconds

SECRET_PREFIX = "whsec_"
RESPONSE_BODY_LIMIT = 4096
USER_AGENT = "openmeter-django-webhooks/1"


class UnsafeTarget(Exception):
    """The webhook URL points into a network we refuse to call (loopback, private, link-local, reserved)."""


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


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_target(url: str) -> None:
    """Refuse URLs that are not http(s) or whose host resolves to a non-public address.

    With OPENMETER_WEBHOOK_ALLOW_PRIVATE every resolvable host is allowed (development, tests, on-prem receivers).
    The check resolves the name right before sending; redirects are not followed.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(f"webhook URL must be http(s) with a host: {url!r}")
    if settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"cannot resolve webhook host {parts.hostname!r}: {exc}") from exc
    for info in infos:
        address = str(info[4][0])
        if not _is_public(address):
            raise UnsafeTarget(
                f"webhook host {parts.hostname!r} resolves to non-public address {address} "
                "(set OPENMETER_WEBHOOK_ALLOW_PRIVATE=1 to allow private targets)"
            )


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    retryable: bool
    status_code: int | None
    body: str
    duration_ms: int
    error: str = ""


def post(*, url: str, headers: dict[str, str], body: bytes) -> AttemptResult:
    """One delivery attempt. 2xx = success; any other answer, a timeout or a network error is retryable."""
    try:
        check_target(url)
    except UnsafeTarget as exc:
        return AttemptResult(ok=False, retryable=False, status_code=None, body="", duration_ms=0, error=str(exc))
    started = time.monotonic()
    try:
        response = requests.post(
            url, data=body, headers=headers, timeout=webhook_timeout_seconds(), allow_redirects=False
        )
    except requests.RequestException as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        return AttemptResult(ok=False, retryable=True, status_code=None, body="", duration_ms=elapsed, error=str(exc))
    elapsed = int((time.monotonic() - started) * 1000)
    text = response.text[:RESPONSE_BODY_LIMIT]
    if 200 <= response.status_code < 300:
        return AttemptResult(ok=True, retryable=False, status_code=response.status_code, body=text, duration_ms=elapsed)
    return AttemptResult(
        ok=False,
        retryable=True,
        status_code=response.status_code,
        body=text,
        duration_ms=elapsed,
        error=f"receiver answered HTTP {response.status_code}",
    )
