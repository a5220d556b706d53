"""Entitlements provisioned from subscription items' entitlement templates (wired in once entitlements land)."""

import datetime as dt

from subscriptions.models import Subscription


def sync_entitlements(*, subscription: Subscription, at: dt.datetime) -> None:
    """Placeholder until `entitlements.services` is on main: items carry their templates, nothing is provisioned."""
    return None
