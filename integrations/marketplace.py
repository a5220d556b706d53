"""The marketplace: one listing per app type, as OpenMeter registers them (names, capabilities, install methods)."""

from dataclasses import dataclass

from integrations.models import AppType
from openmeter_site.core.errors import NotFound


class InstallMethod:
    OAUTH2 = "with_oauth2"
    API_KEY = "with_api_key"
    NO_CREDENTIALS = "no_credentials_required"


@dataclass(frozen=True)
class Capability:
    type: str
    key: str
    name: str
    description: str


@dataclass(frozen=True)
class Listing:
    type: str
    name: str
    description: str
    capabilities: tuple[Capability, ...]
    install_methods: tuple[str, ...]


def _capabilities(prefix: str) -> tuple[Capability, ...]:
    return (
        Capability("collectPayments", f"{prefix}_collect_payment", "Payment", "Process payments"),
        Capability("calculateTax", f"{prefix}_calculate_tax", "Calculate Tax", "Calculate tax for a payment"),
        Capability("invoiceCustomers", f"{prefix}_invoice_customer", "Invoice Customer", "Invoice a customer"),
    )


LISTINGS: dict[str, Listing] = {
    AppType.STRIPE: Listing(
        type=AppType.STRIPE,
        name="Stripe",
        description="Send invoices, calculate tax and collect payments.",
        capabilities=_capabilities("stripe"),
        install_methods=(InstallMethod.OAUTH2, InstallMethod.API_KEY),
    ),
    AppType.SANDBOX: Listing(
        type=AppType.SANDBOX,
        name="Sandbox",
        description="Sandbox can be used to test OpenMeter without external connections.",
        capabilities=_capabilities("sandbox"),
        install_methods=(InstallMethod.NO_CREDENTIALS,),
    ),
    AppType.CUSTOM_INVOICING: Listing(
        type=AppType.CUSTOM_INVOICING,
        name="Custom Invoicing",
        description="Custom Invoicing can be used to interface with third party invoicing and payment systems",
        capabilities=_capabilities("custom_invoicing"),
        install_methods=(InstallMethod.NO_CREDENTIALS,),
    ),
}


def listing_get(app_type: str) -> Listing:
    listing = LISTINGS.get(app_type)
    if listing is None:
        raise NotFound(f"marketplace listing {app_type!r} not found (types: {', '.join(LISTINGS)})")
    return listing


def listing_to_api(listing: Listing) -> dict:
    return {
        "type": listing.type,
        "name": listing.name,
        "description": listing.description,
        "capabilities": [
            {"type": c.type, "key": c.key, "name": c.name, "description": c.description} for c in listing.capabilities
        ],
        "installMethods": list(listing.install_methods),
    }
