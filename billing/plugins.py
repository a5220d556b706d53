"""Apps are plug-ins: billing owns the contract an invoicing app implements and the registry of app types.

Each app type registers itself (`register_app_type`, from its Django app's `AppConfig.ready`); billing knows apps
only through this module and never names one. The invoice state machine calls the invoicing app of an invoice's
workflow at three steps: `draft.syncing` → `sync_draft`, `issuing.syncing` → `finalize`, `delete.syncing` →
`delete`. A backend that answers `done=False` makes the invoice wait in that state until the app reports back
(custom invoicing's `draft/synchronized` and `issuing/synchronized` callbacks). Payment news (Stripe webhooks,
custom invoicing's payment status) comes back through `billing.services.invoice_trigger_payment(...)`.

A `remote` backend calls out over the network. Billing never calls it inside a transaction or while holding row
locks: entering the step commits the intent (the invoice waits in the syncing state), the `billing.sync_remote_apps`
job then makes the call outside any transaction (the backend gives every request an idempotency key derived from
our ids), and commits the result in a new transaction (`billing.services.remote_sync`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from billing.models import App, Invoice


@dataclass(frozen=True)
class SyncResult:
    done: bool
    invoice_number: str | None = None
    external_id: str | None = None
    line_external_ids: dict[str, str] = field(default_factory=dict)


class InvoicingBackend(Protocol):
    def sync_draft(self, invoice: "Invoice") -> SyncResult: ...

    def finalize(self, invoice: "Invoice") -> SyncResult: ...

    def delete(self, invoice: "Invoice") -> None: ...

    def after_issued(self, invoice: "Invoice") -> None:
        """Called in the transaction that issued the invoice; never calls out (sandbox settles payment here)."""


@dataclass(frozen=True)
class AppPlugin:
    type: str
    backend: Callable[["App"], InvoicingBackend]
    # the backend calls out over the network: billing calls it outside any transaction, from a job (a local
    # backend neither calls out nor writes outside the caller's transaction, so billing may sync a new draft
    # before saving it)
    remote: bool
    to_api: Callable[["App"], dict[str, Any]]  # the app as the API shows it (the spec's `App`, one of by type)
    # the app does not report payments itself: an operator records them (custom invoicing's payment status)
    manual_payments: bool = False
    # where an operator sees an invoice in the app, from the invoice's id there (e.g. Stripe's dashboard)
    invoice_url: Callable[["App", str], str] | None = None


_types: dict[str, AppPlugin] = {}
_default_app: list[Callable[[], "App"]] = []


def register_app_type(plugin: AppPlugin) -> None:
    known = _types.get(plugin.type)
    if known is not None and known != plugin:
        raise ImproperlyConfigured(f"app type {plugin.type!r} is registered twice")
    _types[plugin.type] = plugin


def register_default_app(factory: Callable[[], "App"]) -> None:
    """The app a new default billing profile uses (the sandbox, created on first use)."""
    if _default_app and _default_app[0] is not factory:
        raise ImproperlyConfigured("a default app is registered twice")
    _default_app[:] = [factory]


def _plugin(app: "App") -> AppPlugin:
    registered = _types.get(app.type)
    if registered is None:
        raise ImproperlyConfigured(f"no plug-in is registered for app type {app.type!r}")
    return registered


def backend_for(app: "App") -> InvoicingBackend:
    return _plugin(app).backend(app)


def is_remote(app: "App") -> bool:
    return _plugin(app).remote


def app_to_api(app: "App") -> dict[str, Any]:
    return _plugin(app).to_api(app)


def takes_manual_payments(app: "App") -> bool:
    return _plugin(app).manual_payments


def invoice_url(app: "App", external_id: str) -> str | None:
    url = _plugin(app).invoice_url
    return url(app, external_id) if url else None


def remote_app_types() -> list[str]:
    return sorted(t.type for t in _types.values() if t.remote)


def default_app() -> "App":
    if not _default_app:
        raise ImproperlyConfigured("no default app is registered")
    return _default_app[0]()
