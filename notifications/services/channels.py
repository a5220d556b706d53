"""Notification channels (webhooks): create, replace, soft-delete."""

import re
from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone

from notifications.delivery import generate_signing_secret, signing_key
from notifications.models import NotificationChannel, NotificationRule
from notifications.targets import UnsafeTarget, check_webhook_url
from openmeter_site.core.crypto import encrypt
from openmeter_site.core.errors import InvalidInput, NotFound

HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
HEADER_VALUE_RE = re.compile(r"^[\t\x20-\x7e]*$")  # visible ASCII, spaces and tabs: what every HTTP stack sends
# Set by the sender (signature, body framing), or hop-by-hop: a receiver's proxy would act on them, not the receiver.
SENDER_HEADERS = {
    "content-type", "content-length", "host", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
    "te", "trailer", "upgrade", "expect",
}


SIGNING_SECRET_RE = re.compile(r"^(whsec_)?[a-zA-Z0-9+/=]{32,100}$")  # the spec's pattern

def validate_channel_input(
    *, url: str, signing_secret: str | None, custom_headers: Mapping[str, str] | None = None
) -> None:
    """The checks channel_create/channel_update make, for forms that want to show them before saving."""
    _validate_url(url)
    if signing_secret:
        _validate_secret(signing_secret)
    _validate_headers(custom_headers or {})


def _validate_headers(headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if not HEADER_NAME_RE.fullmatch(name):
            raise InvalidInput(f"customHeaders: invalid header name {name!r}")
        if name.lower().startswith("svix-") or name.lower() in SENDER_HEADERS:
            raise InvalidInput(f"customHeaders: {name} is set by the webhook sender")
        if not isinstance(value, str) or not HEADER_VALUE_RE.fullmatch(value):
            raise InvalidInput(
                f"customHeaders: the value of {name} must be printable ASCII (no line breaks or control characters)"
            )


def _validate_url(url: str) -> None:
    try:
        check_webhook_url(url)
    except UnsafeTarget as exc:
        raise InvalidInput(f"url: {exc}") from exc


def _validate_secret(secret: str) -> None:
    if not SIGNING_SECRET_RE.match(secret):
        raise InvalidInput(f"signingSecret: must match {SIGNING_SECRET_RE.pattern} (32 to 100 base64 characters, "
                           "optionally after whsec_)")
    try:
        key = signing_key(secret)
    except ValueError as exc:
        raise InvalidInput(f"signingSecret: {exc}") from exc
    if len(key) < 16:
        raise InvalidInput("signingSecret: must decode to at least 16 bytes")


def channel_get(*, channel_id: str) -> NotificationChannel:
    channel = NotificationChannel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise NotFound(f"notification channel {channel_id} not found")
    return channel


def channel_create(
    *,
    name: str,
    url: str,
    custom_headers: Mapping[str, str] | None = None,
    signing_secret: str | None = None,
    disabled: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> NotificationChannel:
    """A webhook channel. Without a signing secret one is generated in the `whsec_` form."""
    secret = signing_secret or generate_signing_secret()
    validate_channel_input(url=url, signing_secret=secret, custom_headers=custom_headers)
    return NotificationChannel.objects.create(
        name=name,
        url=url,
        custom_headers=dict(custom_headers or {}),
        signing_secret_encrypted=encrypt(secret),
        disabled=disabled,
        metadata=dict(metadata) if metadata is not None else None,
    )


def channel_update(
    *,
    channel_id: str,
    name: str,
    url: str,
    custom_headers: Mapping[str, str] | None = None,
    signing_secret: str | None = None,
    disabled: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> NotificationChannel:
    """PUT semantics: every field is replaced, except that an omitted signing secret keeps the current one."""
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().filter(pk=channel_id, deleted_at__isnull=True).first()
        if channel is None:
            raise NotFound(f"notification channel {channel_id} not found")
        validate_channel_input(url=url, signing_secret=signing_secret, custom_headers=custom_headers)
        channel.name = name
        channel.url = url
        channel.custom_headers = dict(custom_headers or {})
        channel.disabled = disabled
        channel.metadata = dict(metadata) if metadata is not None else None
        if signing_secret:
            channel.signing_secret_encrypted = encrypt(signing_secret)
        channel.save()
    return channel


def channel_set_disabled(*, channel_id: str, disabled: bool) -> NotificationChannel:
    """Disables or enables a channel: the API's PUT of the channel as it is with only `disabled` changed, so the
    same checks apply (a URL no longer allowed, e.g. a private address once OPENMETER_WEBHOOK_ALLOW_PRIVATE is off,
    is refused)."""
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().filter(pk=channel_id, deleted_at__isnull=True).first()
        if channel is None:
            raise NotFound(f"notification channel {channel_id} not found")
        return channel_update(channel_id=channel.pk, name=channel.name, url=channel.url,
                              custom_headers=channel.custom_headers, disabled=disabled, metadata=channel.metadata)


def channel_delete(*, channel_id: str) -> None:
    """Soft delete. A channel still used by a live rule cannot be deleted (400, as upstream)."""
    with transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().filter(pk=channel_id, deleted_at__isnull=True).first()
        if channel is None:
            raise NotFound(f"notification channel {channel_id} not found")
        rule_ids = list(
            NotificationRule.objects.filter(channels=channel, deleted_at__isnull=True).values_list("id", flat=True)
        )
        if rule_ids:
            raise InvalidInput(
                f"notification channel {channel_id} is used by rule(s) {', '.join(rule_ids)}: remove it from them first"
            )
        channel.deleted_at = timezone.now()
        channel.save(update_fields=["deleted_at", "updated_at"])
