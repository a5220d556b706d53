"""A customer's whole story, as its page in the back office shows it: who they are and how they are billed, their
subscriptions, entitlements with live balances, grants, invoices, this period's usage per metered feature, and
what happened to them. Read-only; every number comes from the services the API uses."""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils import timezone

from billing.models import BillingProfile, CustomerOverride, Invoice, InvoiceEvent, InvoiceStatus, status_words
from billing.selectors import invoice_lines
from billing.services import profile_for_customer
from billing.services.editing import gathering_preview
from catalog.features import feature_usage_filters
from catalog.models import Feature
from catalog.periods import Period, billing_period_containing
from customers.models import Customer
from entitlements import balance
from entitlements.balance import EntitlementValue
from entitlements.models import Entitlement, EntitlementType, Grant, UsageReset
from integrations.models import CustomerAppData
from metering.event_store import event_store
from subscriptions.models import Subscription, SubscriptionAddonQuantity, SubscriptionStatus
from subscriptions.services.timeline import phase_at

SECTION_ROWS = 10
HISTORY_ROWS = 25
DAILY_CHART_MAX_DAYS = 62


@dataclass(frozen=True)
class AppLink:
    app_name: str
    label: str
    value: str
    url: str | None = None


@dataclass(frozen=True)
class SubscriptionRow:
    subscription: Subscription
    status: str
    phase: str | None
    next_billing_at: dt.datetime | None


@dataclass(frozen=True)
class EntitlementRow:
    entitlement: Entitlement
    value: EntitlementValue


@dataclass(frozen=True)
class GrantRow:
    grant: Grant
    remaining: Decimal | None
    state: str


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice
    total: Decimal
    so_far: bool  # a gathering invoice: the total of its pending lines with usage to date, not yet invoiced

    @property
    def status(self) -> str:
        return status_words(self.invoice.status)


@dataclass(frozen=True)
class UsageRow:
    feature: Feature
    period: Period
    usage: Decimal
    days: list[tuple[dt.datetime, Decimal]]  # the period day by day (operator's zone), up to today


@dataclass(frozen=True)
class HistoryItem:
    at: dt.datetime
    text: str
    actor: str = ""


@dataclass
class CustomerStory:
    customer: Customer
    at: dt.datetime
    billing_profile: BillingProfile
    profile_pinned: bool
    app_links: list[AppLink] = field(default_factory=list)
    subscriptions: list[SubscriptionRow] = field(default_factory=list)
    entitlements: list[EntitlementRow] = field(default_factory=list)
    grants: list[GrantRow] = field(default_factory=list)
    invoices: list[InvoiceRow] = field(default_factory=list)
    usage: list[UsageRow] = field(default_factory=list)
    history: list[HistoryItem] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The billing address on one line: "Main 1, 10115 Berlin, DE"."""
        a = self.customer.billing_address or {}
        town = " ".join(part for part in (a.get("postalCode"), a.get("city")) if part)
        return ", ".join(p for p in (a.get("line1"), a.get("line2"), town, a.get("state"), a.get("country")) if p)

    @property
    def current_subscription(self) -> Subscription | None:
        live = (SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED)
        return next((r.subscription for r in self.subscriptions if r.status in live), None)


def customer_story(customer: Customer, *, at: dt.datetime | None = None) -> CustomerStory:
    at = at or timezone.now()
    profile = profile_for_customer(customer)
    pinned = CustomerOverride.objects.filter(customer=customer, billing_profile__isnull=False).exists()
    story = CustomerStory(customer=customer, at=at, billing_profile=profile, profile_pinned=pinned)
    story.app_links = app_links(customer)
    story.subscriptions = subscription_rows(customer, at)
    story.entitlements = entitlement_rows(customer, at)
    story.grants = grant_rows(customer, story.entitlements, at)
    story.invoices = invoice_rows(customer)
    story.usage = usage_rows(customer, story, at)
    story.history = history(customer)
    return story


def app_links(customer: Customer) -> list[AppLink]:
    links = []
    for data in CustomerAppData.objects.filter(customer=customer, app__deleted_at__isnull=True).select_related("app"):
        if data.stripe_customer_id:
            mode = "" if data.app.livemode else "test/"
            links.append(AppLink(data.app.name, "Stripe customer", data.stripe_customer_id,
                                 f"https://dashboard.stripe.com/{mode}customers/{data.stripe_customer_id}"))
        if data.stripe_default_payment_method_id:
            links.append(AppLink(data.app.name, "default payment method", data.stripe_default_payment_method_id))
    return links


def next_billing_at(subscription: Subscription, status: str, at: dt.datetime) -> dt.datetime | None:
    """When the current billing period ends (the next invoice), or when a scheduled subscription starts."""
    if status == SubscriptionStatus.SCHEDULED:
        return subscription.active_from
    if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED):
        return None
    end = billing_period_containing(subscription.billing_anchor, subscription.billing_cadence, at).end
    return min(end, subscription.active_to) if subscription.active_to else end


def subscription_rows(customer: Customer, at: dt.datetime) -> list[SubscriptionRow]:
    subscriptions = (
        Subscription.objects.filter(customer=customer, deleted_at__isnull=True).select_related("plan")
        .prefetch_related("phases__items").order_by("-active_from")[:SECTION_ROWS]
    )
    rows = []
    for sub in subscriptions:
        status = sub.status_at(at)
        span = phase_at(sub, at)
        rows.append(SubscriptionRow(sub, status, span.phase.name if span else None, next_billing_at(sub, status, at)))
    return rows


def entitlement_rows(customer: Customer, at: dt.datetime) -> list[EntitlementRow]:
    live = (
        Entitlement.objects.filter(customer=customer, deleted_at__isnull=True, active_from__lte=at)
        .filter(Q(active_to__isnull=True) | Q(active_to__gt=at))
        .select_related("feature__meter").order_by("feature_key")
    )
    entitlements = list(live)
    for entitlement in entitlements:
        entitlement.customer = customer  # its subjects, read once
    values = balance.values(entitlements=entitlements, at=at)
    return [EntitlementRow(entitlement, values[entitlement.pk]) for entitlement in entitlements]


def grant_state(grant: Grant, at: dt.datetime) -> str:
    if grant.voided_at is not None:
        return "void"
    if grant.expires_at is not None and grant.expires_at <= at:
        return "expired"
    if grant.effective_at > at:
        return "scheduled"
    return "active"


def grant_rows(customer: Customer, entitlements: list[EntitlementRow], at: dt.datetime) -> list[GrantRow]:
    remaining = {gid: amount for row in entitlements for gid, amount in row.value.grant_balances.items()}
    grants = (
        Grant.objects.filter(entitlement__customer=customer, deleted_at__isnull=True)
        .select_related("entitlement").order_by("-created_at")[:SECTION_ROWS]
    )
    return [GrantRow(g, remaining.get(g.pk), grant_state(g, at)) for g in grants]


def invoice_rows(customer: Customer) -> list[InvoiceRow]:
    invoices = (
        Invoice.objects.filter(customer=customer, deleted_at__isnull=True).select_related("customer")
        .order_by("-created_at")[:SECTION_ROWS]
    )
    rows = []
    for invoice in invoices:
        if invoice.status == InvoiceStatus.GATHERING:
            gathering_preview(invoice, invoice_lines(invoice))  # totals with usage to date, in memory only
            rows.append(InvoiceRow(invoice, invoice.total, so_far=True))
        else:
            rows.append(InvoiceRow(invoice, invoice.total, so_far=False))
    return rows


def _features_in_use(customer: Customer, story: CustomerStory, at: dt.datetime) -> dict[str, Period]:
    """The customer's metered features and the period to show for each: an entitlement's usage period, else the
    current subscription's billing period."""
    periods: dict[str, Period] = {}
    for row in story.entitlements:
        v = row.value
        if row.entitlement.type == EntitlementType.METERED and v.period_start and v.period_end:
            periods[row.entitlement.feature_key] = Period(v.period_start, v.period_end)
    current = story.current_subscription
    if current is not None:
        span = phase_at(current, at)
        billing = billing_period_containing(current.billing_anchor, current.billing_cadence, at)
        for item in span.phase.items.all() if span else []:
            if item.feature_key and item.feature_key not in periods:
                periods[item.feature_key] = billing
    return periods


def _days(period: Period, at: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The period's days in the operator's zone, up to now (the last one ends now)."""
    zone = timezone.get_current_timezone()
    day = timezone.localtime(period.start, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    end = min(period.end, at)
    out = []
    while day < end:
        next_day = day + dt.timedelta(days=1)  # wall-clock arithmetic: the next local midnight, across DST too
        out.append((max(day, period.start), min(next_day, end)))
        day = next_day
    return out


def usage_rows(customer: Customer, story: CustomerStory, at: dt.datetime) -> list[UsageRow]:
    """This period's usage of each metered feature the customer is entitled to or subscribed to, with its days."""
    periods = _features_in_use(customer, story, at)
    if not periods:
        return []
    subjects = customer.subject_keys()
    until = at.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)  # rollups count whole minutes
    rows = []
    features = Feature.objects.filter(key__in=periods, meter__isnull=False, archived_at__isnull=True)
    for feature in features.select_related("meter").order_by("key"):
        assert feature.meter is not None
        period = periods[feature.key]
        days = _days(period, until) if period.end - period.start <= dt.timedelta(days=DAILY_CHART_MAX_DAYS) else []
        filters = feature_usage_filters(feature)
        total, *per_day = event_store().usage_ranges(
            meter=feature.meter, subjects=subjects, ranges=[(period.start, min(period.end, until)), *days],
            group_filters=filters.group_filters, advanced_filters=filters.advanced_filters, fresh_meter=True,
        )
        rows.append(UsageRow(feature, period, total, [(start, v) for (start, _), v in zip(days, per_day, strict=True)]))
    return rows


def history(customer: Customer) -> list[HistoryItem]:
    """What happened to the customer, newest first: subscriptions starting and ending, grants given and voided,
    manual usage resets, invoice status changes, and edits made in the back office."""
    items = [*_subscription_history(customer), *_addon_history(customer), *_grant_history(customer)]
    resets = UsageReset.objects.filter(entitlement__customer=customer, automatic=False).select_related("entitlement")
    items.extend(HistoryItem(r.reset_at, f"Usage of {r.entitlement.feature_key} reset")
                 for r in resets.order_by("-reset_at")[:HISTORY_ROWS])
    items.extend(_invoice_history(customer))
    edits = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Customer), object_id=customer.pk)
    items.extend(HistoryItem(e.action_time, f"Customer {_log_verb(e)}", f"admin:{e.user.get_username()}")
                 for e in edits.select_related("user").order_by("-action_time")[:HISTORY_ROWS])
    return sorted(items, key=lambda i: i.at, reverse=True)[:HISTORY_ROWS]


def _subscription_history(customer: Customer) -> list[HistoryItem]:
    items = []
    now = timezone.now()
    for sub in Subscription.objects.filter(customer=customer).select_related("plan").order_by("-created_at")[:HISTORY_ROWS]:
        plan = f"to {sub.plan.name} v{sub.plan.version}" if sub.plan else "to a custom plan"
        items.append(HistoryItem(sub.created_at, f"Subscribed {plan} (“{sub.name}”) from {_day(sub.active_from)}"))
        if sub.deleted_at is not None:
            items.append(HistoryItem(sub.deleted_at, f"Scheduled subscription “{sub.name}” deleted"))
        elif sub.active_to is not None:
            verb = "ended" if sub.active_to <= now else "set to end"
            items.append(HistoryItem(min(sub.active_to, sub.updated_at),
                                     f"Subscription “{sub.name}” {verb} on {_day(sub.active_to)}"))
    return items


# an invoice's steps that matter to a billing person: what someone did, and where the automatic steps led
INVOICE_MILESTONES = Q(to_status__in=[InvoiceStatus.DRAFT_MANUAL_APPROVAL_NEEDED, InvoiceStatus.DRAFT_INVALID,
                                      InvoiceStatus.ISSUED, InvoiceStatus.PAID, InvoiceStatus.OVERDUE,
                                      InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.VOIDED, InvoiceStatus.DELETED])
INVOICE_MILESTONES |= Q(to_status__endswith="failed") | ~Q(trigger="next")


def _invoice_history(customer: Customer) -> list[HistoryItem]:
    events = InvoiceEvent.objects.filter(INVOICE_MILESTONES, invoice__customer=customer).select_related("invoice")
    return [
        HistoryItem(e.created_at, f"Invoice {e.invoice.number} created ({status_words(e.to_status)})" if not e.from_status
                    else f"Invoice {e.invoice.number}: {status_words(e.to_status)} ({e.trigger.replace('_', ' ')})",
                    e.actor)
        for e in events.order_by("-id")[:HISTORY_ROWS]
    ]


def _addon_history(customer: Customer) -> list[HistoryItem]:
    quantities = SubscriptionAddonQuantity.objects.filter(subscription_addon__subscription__customer=customer)
    return [
        HistoryItem(q.created_at, f"Add-on {q.subscription_addon.name}: quantity {q.quantity} from {_day(q.active_from)}"
                                  f" on “{q.subscription_addon.subscription.name}”")
        for q in quantities.select_related("subscription_addon__subscription").order_by("-created_at")[:HISTORY_ROWS]
    ]


def _grant_history(customer: Customer) -> list[HistoryItem]:
    items = []
    grants = Grant.objects.filter(entitlement__customer=customer).select_related("entitlement").order_by("-created_at")
    for grant in grants[:HISTORY_ROWS]:
        items.append(HistoryItem(grant.created_at, f"Granted {grant}"))
        if grant.voided_at is not None:
            items.append(HistoryItem(grant.voided_at, f"Voided the grant of {grant}"))
    return items


def _day(value: dt.datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d")


def _log_verb(entry: LogEntry) -> str:
    if entry.is_addition():
        return "created in the back office"
    if entry.is_deletion():
        return "deleted in the back office"
    return f"edited in the back office: {entry.get_change_message() or 'no fields changed'}"
