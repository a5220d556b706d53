"""localstripe, plus the few Stripe endpoints it lacks, faked at the HTTP layer (run as a subprocess by the tests).

localstripe (a stateful Stripe-protocol server) covers customers, payment methods, invoice items, invoices (pay,
void), setup intents. Stripe has, and our code uses, a few more; this launcher adds them to the same aiohttp app:

- `GET /v1/account`: the key's account (`acct_localstripe`).
- `POST /v1/webhook_endpoints`, `DELETE /v1/webhook_endpoints/{id}`: registers the URL and a fresh `whsec_`
  secret with localstripe's own webhook sender, so localstripe delivers signed events (invoice.payment_succeeded,
  invoice.payment_failed, ...) to our server the way Stripe would.
- `POST /v1/invoices/{id}/finalize` and `/mark_uncollectible`: move localstripe's invoice (finalize assigns a
  number) and send `invoice.finalized` / `invoice.marked_uncollectible`; `invoice.paid` accompanies
  localstripe's `invoice.payment_succeeded`.
- `POST /v1/checkout/sessions` (setup mode: creates a real localstripe SetupIntent), `GET .../{id}`, and
  `POST /v1/billing_portal/sessions`.
- Idempotency keys: a POST repeated with the same `Idempotency-Key` gets the first answer back, as Stripe does.

For the crash tests, `POST /_config/hold?path_suffix=/finalize` makes the server do matching requests but hold
back their answers (Stripe did the work, the caller never hears of it) until `POST /_config/release`;
`GET /_config/held` lists the paths whose answers are held.

Usage: python tests/integrations/localstripe_plus.py PORT
"""

import asyncio
import secrets
import sys
import time

from aiohttp import web
from localstripe import resources, server, webhooks
from localstripe.errors import UserError

app = server.app
_idempotent: dict[tuple[str, str, str], tuple[int, bytes]] = {}
_endpoints: dict[str, dict] = {}
_sessions: dict[str, dict] = {}
_numbers = iter(range(1, 10**6))
ACCOUNT_ID = "acct_localstripe"


@web.middleware
async def idempotency_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    cache_key = (request.headers.get("Authorization", ""), request.path, key)
    if cache_key in _idempotent:
        status, body = _idempotent[cache_key]
        return web.Response(status=status, body=body, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    response = await handler(request)
    if response.status < 500:
        _idempotent[cache_key] = (response.status, response.body)
    return response


_holds: dict[str, asyncio.Event] = {}
_held: list[str] = []


@web.middleware
async def hold_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Outermost: the request is done (and its idempotent answer stored) before its answer is held back."""
    response = await handler(request)
    for suffix, released in list(_holds.items()):
        if request.path.endswith(suffix):
            _held.append(request.path)
            await released.wait()
    return response


async def hold(request: web.Request) -> web.Response:
    _holds[request.query["path_suffix"]] = asyncio.Event()
    return _json({"holding": sorted(_holds)})


async def release(request: web.Request) -> web.Response:
    for released in _holds.values():
        released.set()
    _holds.clear()
    _held.clear()
    return _json({"holding": []})


async def held(request: web.Request) -> web.Response:
    return _json({"held": list(_held)})


def _json(data: dict, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def account(request: web.Request) -> web.Response:
    return _json({"id": ACCOUNT_ID, "object": "account", "livemode": False, "country": "US"})


async def webhook_endpoint_create(request: web.Request) -> web.Response:
    data = await server.get_post_data(request) or {}
    endpoint_id = "we_" + secrets.token_hex(8)
    secret = "whsec_" + secrets.token_hex(24)
    events = data.get("enabled_events")
    webhooks.register_webhook(endpoint_id, data["url"], secret, None)
    endpoint = {
        "id": endpoint_id, "object": "webhook_endpoint", "url": data["url"], "secret": secret,
        "enabled_events": events, "metadata": data.get("metadata") or {}, "status": "enabled",
        "created": int(time.time()), "livemode": False,
    }
    _endpoints[endpoint_id] = endpoint
    return _json(endpoint)


async def webhook_endpoint_delete(request: web.Request) -> web.Response:
    endpoint_id = request.match_info["id"]
    if _endpoints.pop(endpoint_id, None) is None:
        raise UserError(404, "No such webhook endpoint")
    webhooks._webhooks.pop(endpoint_id, None)
    return _json({"id": endpoint_id, "object": "webhook_endpoint", "deleted": True})


def _send(event_type: str, obj: resources.StripeObject) -> None:
    webhooks.schedule_webhook(resources.Event(event_type, obj))


async def invoice_finalize(request: web.Request) -> web.Response:
    invoice = resources.Invoice._api_retrieve(request.match_info["id"])
    if invoice.status != "draft":
        raise UserError(400, "This invoice is already finalized")
    invoice._finalize()
    invoice.number = f"LS-{next(_numbers):05d}"
    _send("invoice.finalized", invoice)
    return _json(invoice._export())


async def invoice_mark_uncollectible(request: web.Request) -> web.Response:
    invoice = resources.Invoice._api_retrieve(request.match_info["id"])
    if invoice.status != "open":
        raise UserError(400, "Only open invoices can be marked uncollectible")
    invoice._uncollectible = True
    _send("invoice.marked_uncollectible", _StatusOverride(invoice, "uncollectible"))
    return _json({**invoice._export(), "status": "uncollectible"})


class _StatusOverride:
    """An invoice export with another status (localstripe has no uncollectible status)."""

    def __init__(self, invoice: resources.Invoice, status: str) -> None:
        self._invoice = invoice
        self._status = status
        self.id = invoice.id

    def _export(self, expand=None):  # type: ignore[no-untyped-def]
        return {**self._invoice._export(expand=expand), "status": self._status}


async def checkout_session_create(request: web.Request) -> web.Response:
    data = await server.get_post_data(request) or {}
    if data.get("mode") != "setup":
        raise UserError(400, "only setup mode is faked")
    intent = resources.SetupIntent(
        customer=data.get("customer"),
        metadata=(data.get("setup_intent_data") or {}).get("metadata"),
    )
    session_id = "cs_test_" + secrets.token_hex(12)
    now = int(time.time())
    hosted = data.get("ui_mode", "hosted") == "hosted"
    _sessions[session_id] = session = {
        "id": session_id, "object": "checkout.session", "mode": "setup", "customer": data.get("customer"),
        "setup_intent": intent.id, "status": "open", "created": now,
        "expires_at": int(data.get("expires_at") or now + 86400),
        "currency": data.get("currency"), "metadata": data.get("metadata") or {},
        "client_reference_id": data.get("client_reference_id"),
        "success_url": data.get("success_url"), "cancel_url": data.get("cancel_url"),
        "return_url": data.get("return_url"), "livemode": False,
        "url": f"https://checkout.stripe.com/c/pay/{session_id}" if hosted else None,
        "client_secret": None if hosted else f"{session_id}_secret_{secrets.token_hex(8)}",
        "custom_text": data.get("custom_text"), "consent_collection": data.get("consent_collection"),
        "tax_id_collection": data.get("tax_id_collection"), "customer_update": data.get("customer_update"),
        "billing_address_collection": data.get("billing_address_collection"), "locale": data.get("locale"),
    }
    return _json(session)


async def checkout_session_get(request: web.Request) -> web.Response:
    session = _sessions.get(request.match_info["id"])
    if session is None:
        raise UserError(404, "No such checkout session")
    return _json(session)


async def portal_session_create(request: web.Request) -> web.Response:
    data = await server.get_post_data(request) or {}
    resources.Customer._api_retrieve(data["customer"])
    session_id = "bps_" + secrets.token_hex(12)
    return _json({
        "id": session_id, "object": "billing_portal.session", "customer": data["customer"],
        "configuration": data.get("configuration") or "bpc_default", "created": int(time.time()),
        "livemode": False, "locale": data.get("locale"), "return_url": data.get("return_url"),
        "url": f"https://billing.stripe.com/p/session/{session_id}",
    })


def _paid_alongside_succeeded() -> None:
    """Stripe sends `invoice.paid` with `invoice.payment_succeeded`; localstripe sends only the latter."""
    original = resources.Invoice._on_payment_success

    def on_payment_success(self):  # type: ignore[no-untyped-def]
        original(self)
        _send("invoice.paid", self)

    resources.Invoice._on_payment_success = on_payment_success


def _standalone_invoices() -> None:
    """localstripe creates invoices only for subscriptions; Stripe also creates standalone drafts, with or without
    the customer's pending items (`pending_invoice_items_behavior`), in a given currency."""
    subscription_invoice = resources.Invoice._api_create

    def api_create(cls, customer=None, subscription=None, description=None, metadata=None,  # type: ignore[no-untyped-def]
                   pending_invoice_items_behavior="exclude", currency=None, **options):
        if subscription is not None:
            return subscription_invoice(customer=customer, subscription=subscription, description=description,
                                        metadata=metadata)
        invoice = cls(customer=customer, description=description, metadata=metadata)
        if pending_invoice_items_behavior == "exclude":
            for line in invoice.lines._list:
                resources.InvoiceItem._api_retrieve(line.invoice_item).invoice = None
            invoice.lines._list = []
        if currency:
            invoice.currency = currency
        return invoice

    resources.Invoice._api_create = classmethod(api_create)


def _items_attached_to_invoices() -> None:
    """Stripe adds an item created with `invoice=` to that draft's lines (localstripe only records the id), shows
    an updated item's new amount, and removes a deleted item from them."""
    create, update = resources.InvoiceItem._api_create, resources.InvoiceItem._api_update
    delete = resources.InvoiceItem._api_delete

    def rebuild_lines(invoice_id):  # type: ignore[no-untyped-def]
        invoice = resources.Invoice._api_retrieve(invoice_id)
        if invoice.status != "draft":
            raise UserError(400, "You can only modify the items of a draft invoice")
        items = [v for k, v in resources.store.items() if k.startswith("invoiceitem:") and v.invoice == invoice_id]
        invoice.lines._list = [resources.InvoiceLineItem(item) for item in items]

    def api_create(cls, **data):  # type: ignore[no-untyped-def]
        item = create(**data)
        if item.invoice:
            rebuild_lines(item.invoice)
        return item

    def api_update(cls, id, **data):  # type: ignore[no-untyped-def]
        if "amount" in data:  # form values arrive as strings; localstripe's update does not convert them
            data["amount"] = int(data["amount"])
        item = update(id, **data)
        if item.invoice:
            rebuild_lines(item.invoice)
        return item

    def api_delete(cls, id):  # type: ignore[no-untyped-def]
        invoice_id = resources.InvoiceItem._api_retrieve(id).invoice
        deleted = delete(id)
        if invoice_id:
            rebuild_lines(invoice_id)
        return deleted

    resources.InvoiceItem._api_create = classmethod(api_create)
    resources.InvoiceItem._api_update = classmethod(api_update)
    resources.InvoiceItem._api_delete = classmethod(api_delete)


def main() -> None:
    port = int(sys.argv[1])
    resources.Store.dump_to_disk = lambda self: None  # keep the state in memory only (no shared /tmp pickle)
    app.middlewares.append(idempotency_middleware)
    app.middlewares.insert(0, hold_middleware)
    app.router.add_post("/_config/hold", hold)
    app.router.add_post("/_config/release", release)
    app.router.add_get("/_config/held", held)
    app.router.add_get("/v1/account", account)
    app.router.add_post("/v1/webhook_endpoints", webhook_endpoint_create)
    app.router.add_delete("/v1/webhook_endpoints/{id}", webhook_endpoint_delete)
    app.router.add_post("/v1/invoices/{id}/finalize", invoice_finalize)
    app.router.add_post("/v1/invoices/{id}/mark_uncollectible", invoice_mark_uncollectible)
    app.router.add_post("/v1/checkout/sessions", checkout_session_create)
    app.router.add_get("/v1/checkout/sessions/{id}", checkout_session_get)
    app.router.add_post("/v1/billing_portal/sessions", portal_session_create)
    _paid_alongside_succeeded()
    _standalone_invoices()
    _items_attached_to_invoices()
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
