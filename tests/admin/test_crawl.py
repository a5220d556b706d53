"""The crawl: on a rich dataset (one of everything, built through the API), follow every link of the back office from
its index (changelists, their filters and sorting, change pages, history, add pages, operator action pages, editor
pages) and require that no page answers a 5xx, that every registered model's changelist and change page were
rendered, and that the billing pages show no internal names (the API's field paths and camelCase names, extended
invoice statuses, stored durations, Django's "Empty / Not empty" filters)."""

import html
import re
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.urls import reverse

from tests.admin.rich_data import RichData

# links the crawl does not follow: leaving the session, and the JavaScript catalogue
SKIP = re.compile(r"^/admin/(logout|jsi18n)/")
ULID_OR_NUMBER = re.compile(r"/([0-9A-HJKMNP-TV-Z]{26}|\d+)(?=/)")
# pages per link pattern (a path with its ids as {id}, and the names of its query parameters): several records of a
# kind (a published plan and a draft differ), one page per filter or sort order
PER_RECORD_PATTERN, PER_QUERY_PATTERN = 3, 1
MAX_PAGES = 2000
# registered models the dataset leaves empty on purpose (schedule kinds the beat installer does not use)
EMPTY = {"django_celery_beat.ClockedSchedule", "django_celery_beat.CrontabSchedule", "django_celery_beat.SolarSchedule"}


def pattern(url: str) -> str:
    parts = urlsplit(url)
    params = sorted({p.split("=")[0] for p in parts.query.split("&") if p})
    return ULID_OR_NUMBER.sub("/{id}", parts.path) + ("?" + "&".join(params) if params else "")


def crawl(client, start: str, on_page: Callable[[str, str], None] | None = None) -> tuple[dict[str, int], list[str]]:
    """Breadth first over the admin's links (GET only: every page that changes something asks by POST);
    `on_page(url, html)` sees every HTML page."""
    queue, seen, counts = [start], {start}, Counter[str]()
    statuses: dict[str, int] = {}
    failures = []
    while queue and len(statuses) < MAX_PAGES:
        url = queue.pop(0)
        response = client.get(url)
        statuses[url] = response.status_code
        if response.status_code >= 500:
            failures.append(f"{url}: {response.status_code}")
            continue
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        if on_page is not None:
            on_page(url, response.content.decode())
        for link in re.findall(r'href="(/admin/[^"#]*)"', response.content.decode()):
            link = html.unescape(link)
            limit = PER_QUERY_PATTERN if "?" in link else PER_RECORD_PATTERN
            if link in seen or SKIP.match(link) or counts[pattern(link)] >= limit:
                continue
            seen.add(link)
            counts[pattern(link)] += 1
            queue.append(link)
    return statuses, failures


# what an operator should never have to read on a billing page
INTERNAL_NAMES = {
    "an API field path": re.compile(r"\b(?:phases|rateCards|tiers|thresholds|items)\[\d+\]"),
    "a camelCase API name": re.compile(r"\b[a-z]+[A-Z][a-z]+(?:[A-Z][a-z]+)*\b"),
    "an extended invoice status": re.compile(r"\b(?:draft|issuing|payment_processing|delete)\.[a-z]"),
    "a stored duration": re.compile(r"\bP(?:\d+[YMWD])+\b"),
    "a snake_case value": re.compile(r"\b(?:custom_invoicing|manual_approval_needed|usage_value|usage_percentage|"
                                     r"balance_value|in_advance|in_arrears|flat_fee|usage_based)\b"),
    "Django's empty-field filter": re.compile(r"\bNot empty\b"),
}
# pages for people who run the system rather than bill (jobs, the domain-event outbox, Django's users, the schedules'
# own admin, API keys, whose random prefixes read like camelCase now and then) and pages whose data is the
# customer's own JSON (the usage event browser, a static entitlement's config)
NOT_BILLING = re.compile(r"^/admin/(?:django_celery_beat|outbox|core/jobrun|core/apikey|auth|metering/event|[a-z_]+/$|$)")
HIDDEN = re.compile(r"<(script|style|head|textarea)\b.*?</\1>|<[^>]+>", re.S)


def visible_text(page: str) -> str:
    """What the page shows (no markup, scripts, or the text a form field holds)."""
    return html.unescape(HIDDEN.sub(" ", page[page.find('id="content"'):]))


def internal_names(url: str, page: str) -> list[str]:
    if NOT_BILLING.match(url):
        return []
    text = visible_text(page)
    return [f"{pattern(url)}: {what} {found.group(0)!r}" for what, regex in INTERNAL_NAMES.items()
            if (found := regex.search(text))]


@pytest.mark.django_db
def test_every_admin_page_renders_on_a_rich_dataset(admin_client, api, settings):
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = True  # the dataset's webhook channel points at loopback
    RichData(api).build()
    shown: list[str] = []

    statuses, failures = crawl(admin_client, "/admin/", lambda url, page: shown.extend(internal_names(url, page)))

    assert not failures, failures
    assert not sorted(set(shown)), "\n".join(sorted(set(shown)))
    visited = {pattern(url) for url in statuses}
    missing = []
    for model in admin.site._registry:
        label, opts = model._meta.label, model._meta
        if reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist") not in statuses:
            missing.append(f"{label}: changelist")
        change = f"/admin/{opts.app_label}/{opts.model_name}/{{id}}/change/"
        if label not in EMPTY and change not in visited:
            missing.append(f"{label}: no change page reached (no rows in the dataset?)")
    assert not missing, missing
    # beyond changelists and change pages: filters, sorting, history, operator actions and the plan editor
    for kind in ("?", "/history/", "/do/", "/phases/default/cards/", "/add/"):
        assert any(kind in url for url in statuses), kind
