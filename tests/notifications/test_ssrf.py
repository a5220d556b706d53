"""The webhook SSRF guard (issue 13, item 1): which URLs are refused, the one address a delivery connects to, no
redirects, and how little of a receiver's reply is kept.

The suite runs with OPENMETER_WEBHOOK_ALLOW_PRIVATE=1 (the receivers listen on loopback); these tests turn it off
where the policy is what they test.
"""

import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notifications import targets
from notifications.delivery import response_excerpt
from notifications.models import DeliveryState, NotificationChannel, NotificationDelivery
from notifications.services.channels import channel_create
from notifications.services.evaluation import emit_invoice_event
from notifications.services.rules import rule_create
from notifications.targets import UnsafeTarget, resolve_target
from tests.notifications.conftest import Reply, running_receiver
from tests.notifications.test_delivery import INVOICE

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


@pytest.fixture
def private_refused(settings):
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = False


REFUSED = [
    # what urllib3 sends differs from what urlsplit saw: 127.0.0.1, not 8.8.8.8
    pytest.param("http://127.0.0.1:80\\@8.8.8.8/", id="backslash_before_userinfo"),
    pytest.param("http://8.8.8.8\\@127.0.0.1/", id="backslash_in_host"),
    pytest.param("http://user:pass@8.8.8.8/", id="userinfo"),
    pytest.param("http://8.8.8.8@127.0.0.1/", id="userinfo_hiding_the_host"),
    pytest.param("http://8.8.8.8:80@127.0.0.1:80/", id="userinfo_with_port"),
    # IPv6 forms that embed or reach an IPv4 address
    pytest.param("http://[64:ff9b::7f00:1]/", id="nat64_loopback"),
    pytest.param("http://[64:ff9b::808:808]/", id="nat64_public_v4"),
    pytest.param("http://[64:ff9b:1::a00:1]/", id="local_nat64"),
    pytest.param("http://[2002:7f00:1::]/", id="6to4_loopback"),
    pytest.param("http://[2002:a9fe:a9fe::1]/", id="6to4_link_local"),
    pytest.param("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", id="teredo"),
    pytest.param("http://[::ffff:127.0.0.1]/", id="ipv4_mapped_dotted"),
    pytest.param("http://[::ffff:7f00:1]/", id="ipv4_mapped_hex"),
    pytest.param("http://[::ffff:8.8.8.8]/", id="ipv4_mapped_public"),
    pytest.param("http://[::127.0.0.1]/", id="ipv4_compatible"),
    pytest.param("http://[::1]/", id="ipv6_loopback"),
    pytest.param("http://[::]/", id="ipv6_unspecified"),
    pytest.param("http://[fe80::1]/", id="ipv6_link_local"),
    pytest.param("http://[fe80::1%25eth0]/", id="ipv6_zone_id"),
    pytest.param("http://[fec0::1]/", id="ipv6_site_local"),
    pytest.param("http://[fd00::1]/", id="ipv6_unique_local"),
    pytest.param("http://[ff02::1]/", id="ipv6_multicast"),
    pytest.param("http://[100::1]/", id="ipv6_discard"),
    pytest.param("http://[2001:db8::1]/", id="ipv6_documentation"),
    # IPv4 spellings that resolvers read as 127.0.0.1
    pytest.param("http://2130706433/", id="decimal_ipv4"),
    pytest.param("http://0x7f.1/", id="hex_ipv4"),
    pytest.param("http://0x7f000001/", id="hex_ipv4_whole"),
    pytest.param("http://0177.0.0.1/", id="octal_ipv4"),
    pytest.param("http://127.1/", id="short_ipv4"),
    pytest.param("http://127.0.0.1./", id="ipv4_trailing_dot"),
    pytest.param("http://%31%32%37.0.0.1/", id="percent_encoded_host"),
    # IPv4 ranges
    pytest.param("http://127.0.0.1/", id="loopback"),
    pytest.param("http://10.0.0.1/", id="private_10"),
    pytest.param("http://172.16.0.1/", id="private_172"),
    pytest.param("http://192.168.1.1/", id="private_192"),
    pytest.param("http://169.254.169.254/latest/meta-data", id="link_local_metadata"),
    pytest.param("http://100.64.0.1/", id="cgnat"),
    pytest.param("http://198.18.0.1/", id="benchmark"),
    pytest.param("http://192.0.0.8/", id="ietf_assignments"),
    pytest.param("http://192.0.2.1/", id="documentation"),
    pytest.param("http://0.0.0.0/", id="unspecified"),
    pytest.param("http://224.0.0.1/", id="multicast"),
    pytest.param("http://240.0.0.1/", id="reserved"),
    pytest.param("http://255.255.255.255/", id="broadcast"),
    # names that resolve to loopback
    pytest.param("http://localhost/", id="localhost"),
    pytest.param("http://LOCALHOST:8080/", id="localhost_upper_case"),
    pytest.param("http://localhost./", id="localhost_trailing_dot"),
    # not a plain http(s) URL
    pytest.param("ftp://8.8.8.8/", id="ftp"),
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("http:///hook", id="no_host"),
    pytest.param("http://8.8.8.8/hook#x", id="fragment"),
    pytest.param("http://8.8.8.8/a b", id="space"),
    pytest.param("http://8.8.8.8/a\tb", id="tab"),
    pytest.param("http://8.8.8.8/\r\nX-Injected: 1", id="line_break"),
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_channel_url_outside_the_policy_is_a_400_and_nothing_is_stored(api, private_refused, url):
    body = {"type": "WEBHOOK", "name": "hook", "url": url}
    response = api.post("/api/v1/notification/channels", body, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == PROBLEM
    assert "url" in response.json()["detail"]
    assert not NotificationChannel.objects.exists()


@pytest.mark.parametrize("url", REFUSED)
def test_a_delivery_to_a_url_outside_the_policy_is_refused(private_refused, url):
    with pytest.raises(UnsafeTarget):
        resolve_target(url)


@pytest.mark.parametrize(
    ("url", "address", "host_header", "request_uri"),
    [
        ("http://8.8.8.8/hook", "8.8.8.8", "8.8.8.8", "/hook"),
        ("HTTPS://8.8.8.8:8443/a/../b?x=1", "8.8.8.8", "8.8.8.8:8443", "/b?x=1"),
        ("https://[2606:4700:4700::1111]/x", "2606:4700:4700::1111", "[2606:4700:4700::1111]", "/x"),
        ("http://[2002:808:808::1]", "2002:808:808::1", "[2002:808:808::1]", "/"),  # 6to4 of 8.8.8.8
    ],
)
def test_a_public_address_is_called_as_written(private_refused, url, address, host_header, request_uri):
    target = resolve_target(url)
    assert (target.address, target.url.host_header, target.url.request_uri) == (address, host_header, request_uri)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
        ("169.254.169.254", False), ("100.64.0.1", False), ("100.127.255.254", False), ("198.18.0.1", False),
        ("198.19.255.255", False), ("0.0.0.0", False), ("224.0.0.1", False), ("239.255.255.250", False),
        ("255.255.255.255", False), ("::1", False), ("::", False), ("fe80::1", False), ("fd00::1", False),
        ("::ffff:127.0.0.1", False), ("::ffff:8.8.8.8", False), ("64:ff9b::8.8.8.8", False),
        ("64:ff9b:1::1", False), ("2001::1", False), ("2002:7f00:1::", False), ("2002:c0a8:101::", False),
        ("ff02::1", False),
        ("8.8.8.8", True), ("1.1.1.1", True), ("2606:4700:4700::1111", True), ("2002:808:808::", True),
    ],
)
def test_address_classification(address, public):
    assert targets.is_public_address(ipaddress.ip_address(address)) is public


def deliver(django_capture_on_commit_callbacks, url: str) -> NotificationDelivery:
    channel = channel_create(name="hook", url=url)
    rule_create(type="invoice.created", name="invoices", channel_ids=[channel.id])
    with django_capture_on_commit_callbacks(execute=True):
        [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")
    return event.deliveries.get()


def stored_channel_delivery(django_capture_on_commit_callbacks, url: str) -> NotificationDelivery:
    """Deliver to a channel whose URL was stored before this guard existed (no check when it was saved)."""
    channel = channel_create(name="hook", url="http://8.8.8.8/hook")
    NotificationChannel.objects.filter(pk=channel.pk).update(url=url)
    rule_create(type="invoice.created", name="invoices", channel_ids=[channel.id])
    with django_capture_on_commit_callbacks(execute=True):
        [event] = emit_invoice_event(invoice_payload=INVOICE, event_type="invoice.created")
    return event.deliveries.get()


def test_a_stored_backslash_url_is_not_sent_to_the_host_urllib3_would_read(
    receiver, settings, django_capture_on_commit_callbacks
):
    # given a channel stored before the guard with a URL whose host is 127.0.0.1 for urllib3, 8.8.8.8 for urlsplit
    port = receiver.url.split(":")[2].split("/")[0]
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = False
    # when an event is delivered to it
    delivery = stored_channel_delivery(django_capture_on_commit_callbacks, f"http://127.0.0.1:{port}\\@8.8.8.8/")
    # then nothing reached the loopback receiver and the delivery failed for good
    assert receiver.requests == []
    assert delivery.state == DeliveryState.FAILED
    assert "backslash" in delivery.reason
    assert delivery.attempts.count() == 1


def test_the_policy_is_checked_again_at_each_delivery(receiver, settings, django_capture_on_commit_callbacks):
    # given a stored channel to a name that resolves to loopback
    port = receiver.url.split(":")[2].split("/")[0]
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = False
    delivery = stored_channel_delivery(django_capture_on_commit_callbacks, f"http://localhost:{port}/hook")
    assert receiver.requests == []
    assert (delivery.state, delivery.attempts.get().status_code) == (DeliveryState.FAILED, None)
    assert "non-public address 127.0.0.1" in delivery.reason


def test_a_name_is_resolved_once_per_delivery_so_a_rebinding_answer_is_never_used(
    receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    # given a DNS name that answers a public address first and loopback afterwards (DNS rebinding)
    settings.OPENMETER_WEBHOOK_TIMEOUT_SECONDS = 1
    settings.OPENMETER_WEBHOOK_MAX_ATTEMPTS = 1
    port = int(receiver.url.split(":")[2].split("/")[0])
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["8.8.8.8"])
    asked: list[str] = []

    def rebinding_resolver(host, *args, **kwargs):
        if host != "rebind.example":
            return real_getaddrinfo(host, *args, **kwargs)
        asked.append(host)
        address = next(answers, "127.0.0.1")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_resolver)
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = False
    # when an event is delivered to it
    delivery = stored_channel_delivery(django_capture_on_commit_callbacks, f"http://rebind.example:{port}/hook")
    # then the one delivery asked once and went to the public answer (unreachable here), never to loopback
    assert asked == ["rebind.example"]
    assert receiver.requests == []
    assert (delivery.state, delivery.attempts.get().status_code) == (DeliveryState.FAILED, None)


def test_with_private_targets_allowed_the_request_goes_to_the_resolved_address_under_the_name(
    receiver, django_capture_on_commit_callbacks
):
    port = receiver.url.split(":")[2].split("/")[0]
    delivery = deliver(django_capture_on_commit_callbacks, f"http://localhost:{port}/hook?tenant=a")
    assert delivery.state == DeliveryState.SUCCESS
    [request] = receiver.requests
    assert (request.path, request.headers["host"]) == ("/hook?tenant=a", f"localhost:{port}")


def test_a_redirect_is_not_followed(receiver, settings, django_capture_on_commit_callbacks):
    # given a receiver that redirects to another one (a private address the sender must never reach)
    settings.OPENMETER_WEBHOOK_MAX_ATTEMPTS = 1
    with running_receiver() as private:
        receiver.script = [Reply(307, {"Location": private.url}), Reply(302, {"Location": private.url})]
        # when an event is delivered
        delivery = deliver(django_capture_on_commit_callbacks, receiver.url)
    # then the redirect was recorded as a failed attempt and the other receiver got nothing
    assert private.requests == []
    assert len(receiver.requests) == 1
    assert delivery.state == DeliveryState.FAILED
    assert [(a.state, a.status_code) for a in delivery.attempts.all()] == [("FAILED", 307)]
    assert "HTTP 307" in delivery.reason


@pytest.mark.unchecked_responses("the events carry a hand-made invoice payload (INVOICE), not one the server rendered")
def test_only_a_short_text_excerpt_of_the_reply_is_kept_and_shown(api, receiver, settings,
                                                                   django_capture_on_commit_callbacks):
    # given a receiver answering a long HTML page with control characters, then a binary body
    settings.OPENMETER_WEBHOOK_RETRY_BASE_SECONDS = 0
    page = b"<html>\x1b[31m secret\x00 \r\n" + b"internal data " * 500 + b"</html>"
    receiver.script = [
        Reply(500, {"Content-Type": "text/html; charset=utf-8"}, page),
        Reply(200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
    ]
    # when an event is delivered (the first attempt fails, the second succeeds)
    delivery = deliver(django_capture_on_commit_callbacks, receiver.url)
    # then attempts[].response shows the status and at most 200 printable characters of a textual body
    body = api.get(f"/api/v1/notification/events/{delivery.event_id}").json()
    responses = [a["response"] for a in body["deliveryStatus"][0]["attempts"]]
    assert [(r["statusCode"], r["body"]) for r in responses] == [
        (500, ("<html> [31m secret internal data " + "internal data " * 14)[:200]),
        (200, ""),
    ]
    assert len(responses[0]["body"]) == 200


@pytest.mark.parametrize(
    ("content_type", "raw", "excerpt"),
    [
        ("application/json", b'{"ok": true}', '{"ok": true}'),
        ("", b"accepted\n", "accepted"),
        ("text/plain", b"caf\xc3\xa9 \xff\xfe ok", "caf\u00e9 ok"),
        ("application/problem+json", b'{"title":\t"x"}', '{"title": "x"}'),
        ("application/octet-stream", b"plain words", ""),
    ],
)
def test_response_excerpt(content_type, raw, excerpt):
    assert response_excerpt(content_type, raw) == excerpt


# --- HTTPS: the connection goes to the resolved address, TLS keeps the name --------------------------------------


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for the name `localhost` only (no IP address) that it signed."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return ca_path, cert_path, key_path


@pytest.fixture
def https_receiver(tmp_path, monkeypatch):
    ca_path, cert_path, key_path = _certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))  # the sender trusts the test CA (system CA store)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_path, key_path)
    server_names: list[str | None] = []
    tls.sni_callback = lambda sock, name, ctx: server_names.append(name)
    with running_receiver(tls) as state:
        state.server_names = server_names  # type: ignore[attr-defined]
        yield state


def test_https_goes_to_the_resolved_address_with_the_name_as_sni_and_certificate_name(
    https_receiver, settings, django_capture_on_commit_callbacks
):
    settings.OPENMETER_WEBHOOK_MAX_ATTEMPTS = 1
    port = https_receiver.url.split(":")[2].split("/")[0]
    # a name: SNI and the certificate check use it, while the connection goes to 127.0.0.1
    delivery = deliver(django_capture_on_commit_callbacks, f"https://localhost:{port}/hook")
    assert delivery.state == DeliveryState.SUCCESS
    assert https_receiver.server_names == ["localhost"]
    assert https_receiver.requests[0].headers["host"] == f"localhost:{port}"
    # the address itself: the certificate does not name it, so nothing is sent
    delivery = deliver(django_capture_on_commit_callbacks, f"https://127.0.0.1:{port}/hook")
    assert delivery.state == DeliveryState.FAILED
    assert "certificate" in delivery.reason.lower()
    assert len(https_receiver.requests) == 1
