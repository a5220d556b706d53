"""Webhook targets: which URLs we call, and the one address we connect to for each delivery (the SSRF guard).

A URL is parsed by urllib3's `parse_url`, the parser of the library that sends, and must be plain
`http(s)://host[:port]/path?query`: no user info, backslash, percent-encoded or zone-id host, fragment, white
space or control character. A host is a DNS name whose last label starts with a letter, a dotted-quad IPv4
address or a bracketed IPv6 address; numeric forms that resolvers read as IPv4 (`2130706433`, `0x7f.1`,
`0177.0.0.1`, `127.1`) are refused.

The name is resolved once per delivery and every address it resolves to must be public; the request then goes
to the first of those addresses (Host header, TLS SNI and certificate check keep the name), so a second
resolution can never send it elsewhere (DNS rebinding). With OPENMETER_WEBHOOK_ALLOW_PRIVATE any address is
allowed, but the request still goes to the address resolved for that delivery.
"""

import ipaddress
import re
import socket
from dataclasses import dataclass

from django.conf import settings
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

AUTHORITY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<authority>[^/?#]*)")
LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DNS_NAME_RE = re.compile(rf"^(?:{LABEL}\.)*(?=[a-z])(?:{LABEL})\.?$")  # the last label starts with a letter

# Never called, whatever Python's `is_global` says of them.
NON_PUBLIC_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network", 0.0.0.0
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata services)
        "192.0.0.0/24", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # IETF assignments, documentation
        "192.88.99.0/24",  # 6to4 relays
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/8",  # unspecified, loopback, IPv4-compatible and IPv4-mapped addresses, reserved
        "64:ff9b::/96", "64:ff9b:1::/48",  # NAT64: the embedded IPv4 address is reached through a translator
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32", "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local
        "fe80::/10", "fec0::/10",  # link-local, site-local
        "ff00::/8",  # multicast
    )
)
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class UnsafeTarget(Exception):
    """A webhook URL we refuse to call. `retryable`: the host could not be resolved right now."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class WebhookUrl:
    scheme: str  # http or https
    host: str  # a DNS name or an IP address, without brackets
    port: int
    host_header: str  # the Host header: host[:port] as the URL wrote them
    request_uri: str  # /path?query


@dataclass(frozen=True)
class Target:
    url: WebhookUrl
    address: str  # the IP address to connect to, resolved from url.host for this delivery


def is_public_address(ip: IPAddress) -> bool:
    """Whether a webhook may be sent to this address. A 6to4 address is judged by the IPv4 address it embeds."""
    if ip in SIX_TO_FOUR:
        assert isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None
        return is_public_address(ip.sixtofour)
    if any(ip in network for network in NON_PUBLIC_NETWORKS if network.version == ip.version):
        return False
    return ip.is_global


def parse_webhook_url(url: str) -> WebhookUrl:
    """The URL's parts as they are sent, or UnsafeTarget if it is not a plain http(s)://host[:port]/path?query."""
    if "\\" in url or not url.isprintable() or any(c.isspace() for c in url):
        raise UnsafeTarget("webhook URL must not contain backslashes, white space or control characters")
    authority = AUTHORITY_RE.match(url)
    if authority is None:
        raise UnsafeTarget("webhook URL must be http(s)://host[:port]/path")
    if "@" in authority["authority"]:
        raise UnsafeTarget("webhook URL must not contain user info (user:password@)")
    if "%" in authority["authority"]:
        raise UnsafeTarget("webhook URL host must not be percent-encoded or carry an IPv6 zone id")
    try:
        parsed = parse_url(url)
    except LocationParseError as exc:
        raise UnsafeTarget(f"webhook URL cannot be parsed: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise UnsafeTarget("webhook URL must be http or https")
    if parsed.fragment is not None:
        raise UnsafeTarget("webhook URL must not have a fragment (#)")
    host = _plain_host(parsed.host or "")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host_header = parsed.host + (f":{parsed.port}" if parsed.port else "") if parsed.host else ""
    return WebhookUrl(scheme=parsed.scheme, host=host, port=port, host_header=host_header,
                      request_uri=parsed.request_uri)


def _plain_host(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError as exc:
            raise UnsafeTarget(f"webhook URL host {host} is not an IPv6 address") from exc
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    if not DNS_NAME_RE.match(host):
        raise UnsafeTarget(
            f"webhook URL host {host!r} must be a DNS name, a dotted-quad IPv4 address or a bracketed IPv6 address"
        )
    return host


def check_webhook_url(url: str) -> None:
    """The check made when a channel is saved: the URL is plain and, unless private targets are allowed, its
    host resolves to public addresses only. Deliveries check again (`resolve_target`)."""
    parsed = parse_webhook_url(url)
    if not settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE:
        _resolve(parsed)


def resolve_target(url: str) -> Target:
    """Resolve the URL's host once for one delivery: the address to connect to, checked against the policy."""
    parsed = parse_webhook_url(url)
    return Target(url=parsed, address=_resolve(parsed))


def _resolve(url: WebhookUrl) -> str:
    try:
        infos = socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"cannot resolve webhook host {url.host!r}: {exc}", retryable=True) from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeTarget(
                    f"webhook host {url.host!r} resolves to non-public address {address} "
                    "(set OPENMETER_WEBHOOK_ALLOW_PRIVATE=1 to allow private targets)"
                )
    return str(addresses[0])
