"""No API input is a 500 for being at the edge of its type's range.

The write operations of tests/core/test_field_lengths.py, with each date-time of the valid body moved to the first
and the last second that RFC 3339 can write, each number (and decimal string) made larger than any column holds,
and each ISO duration made ten thousand years long. A 400 must leave the database as it was.
"""

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import time_machine

from tests.core.test_field_lengths import NOW, WRITES, replaced, send, stores_anything, world  # noqa: F401

pytestmark = pytest.mark.django_db

DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T")
DECIMAL_RE = re.compile(r"^-?\d+(\.\d+)?$")
DURATION_RE = re.compile(r"^P(?=.)")

EXTREMES = {
    "date-time": ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
    "decimal string": ["1" + "0" * 30, "-" + "9" * 20, "0." + "0" * 25 + "1"],
    "number": [10**30, -(10**20), 1e300],
    "duration": ["P9999Y", "P1000000D"],
}


def scalars(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(path, kind) of every date-time, decimal string, number and ISO duration in a JSON document."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        yield path, "number"
    elif isinstance(value, str):
        for kind, pattern in (("date-time", DATE_TIME_RE), ("decimal string", DECIMAL_RE), ("duration", DURATION_RE)):
            if pattern.match(value):
                yield path, kind
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from scalars(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from scalars(item, (*path, index))


@pytest.mark.parametrize(("method", "path"), [k for k, v in WRITES.items() if callable(v)], ids=lambda v: v)
def test_no_value_at_the_edge_of_its_range_is_a_500(api, world, method, path):  # noqa: F811
    concrete, body = WRITES[(method, path)](world)  # type: ignore[operator]
    failures = []
    with time_machine.travel(NOW, tick=False):
        for leaf, kind in scalars(body):
            for extreme in EXTREMES[kind]:
                changed = replaced(body, leaf, "value", extreme)
                response, written = send(api, method, concrete, changed)
                where = f"{'.'.join(map(str, leaf))} = {extreme!r}"
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code}")
                elif response.status_code == 400 and written and stores_anything(api, method, concrete, changed):
                    failures.append(f"{where}: the 400 left rows written")
    if failures:
        pytest.fail("\n".join(failures))


# Reads with date-time parameters, against the world (the meter `tokens`, the customer and subject `acme` with an
# entitlement to it); each parameter at each end of the range, and both ends at once.
READS = {
    "/api/v1/billing/invoices": ["issuedAfter", "issuedBefore", "periodStartAfter", "periodStartBefore",
                                 "createdAfter", "createdBefore"],
    "/api/v1/customers/acme/entitlements/tokens/value": ["time"],
    "/api/v1/events": ["ingestedAtFrom", "ingestedAtTo", "from", "to"],
    "/api/v1/meters/tokens/group-by/model/values": ["from", "to"],
    "/api/v1/meters/tokens/query": ["from", "to"],
    "/api/v1/meters/tokens/query?windowSize=DAY&windowTimeZone=Pacific/Kiritimati": ["from", "to"],
    "/api/v1/meters/tokens/query?windowSize=MINUTE&windowTimeZone=America/St_Johns": ["from", "to"],
    "/api/v1/meters/tokens/subjects": ["from", "to"],
    "/api/v1/subjects/acme/entitlements/tokens/value": ["time"],
    "/api/v1/subjects/acme/entitlements/{entitlement}/history?windowSize=DAY": ["from", "to"],
    "/api/v1/subscriptions/{subscription}": ["at"],
    "/api/v2/customers/acme/entitlements/tokens/history?windowSize=DAY": ["from", "to"],
    "/api/v2/customers/acme/entitlements/tokens/value": ["time"],
}


@pytest.mark.parametrize("path", READS, ids=lambda v: v)
def test_no_date_time_parameter_at_the_edge_of_the_range_is_a_500(api, world, path):  # noqa: F811
    concrete = path.format(entitlement=world.entitlement, subscription=world.subscription)
    first, last = EXTREMES["date-time"]
    params = READS[path]
    tries = [{name: value} for name in params for value in (first, last)]
    if len(params) == 2:
        tries.append({params[0]: first, params[1]: last})
    failures = []
    with time_machine.travel(NOW, tick=False):
        for query in tries:
            response = api.get(concrete, query)
            if response.status_code >= 500:
                failures.append(f"{query}: {response.status_code}")
    if failures:
        pytest.fail("\n".join(failures))


def test_an_amount_the_columns_cannot_hold_is_a_400_naming_it(api):
    # each line's amount fits its column (under 1E+19); the invoice's total of them does not
    from billing.models import Invoice, InvoiceStatus
    from tests.billing.helpers import customer, flat_line

    cust = customer(name="Huge Fees Inc", subjects=("huge-fees",))  # "acme" is taken by this module's world
    lines = [flat_line(name=f"Fee {n}", amount="9" * 18 + "0") for n in (1, 2)]
    created = api.post(f"/api/v1/billing/customers/{cust.pk}/invoices/pending-lines",
                       {"currency": "USD", "lines": lines}, format="json")
    assert created.status_code == 201, created.content
    response = api.post("/api/v1/billing/invoices/invoice", {"customerId": cust.pk}, format="json")
    assert response.status_code == 400, response.content
    assert "is out of range (less than 1E+19 in magnitude)" in response.json()["detail"]
    assert not Invoice.objects.filter(customer_id=cust.pk).exclude(status=InvoiceStatus.GATHERING).exists()


@pytest.mark.parametrize("amount", ["9999999999999999999.9999999999999999999", "0.0000000000000000001"])
def test_the_largest_and_smallest_amounts_the_columns_hold_are_accepted_and_kept_exactly(api, world, amount):  # noqa: F811
    # the column's extremes (38 digits, 19 after the point): more digits than Python's default 28-digit context
    from entitlements.models import Grant

    with time_machine.travel(NOW, tick=False):
        response = api.post("/api/v2/customers/acme/entitlements/tokens/grants",
                            {"amount": amount, "effectiveAt": "2026-03-01T00:00:00Z"}, format="json")
    assert response.status_code == 201, response.content
    assert json.loads(response.content, parse_float=Decimal)["amount"] == Decimal(amount)
    assert Grant.objects.get(pk=response.json()["id"]).amount == Decimal(amount)


@pytest.mark.parametrize("amount", ["10000000000000000000", "9999999999999999999.99999999999999999995",
                                    "-9999999999999999999.99999999999999999999"])
def test_an_amount_that_rounds_to_1e19_at_19_decimal_places_is_a_400(api, world, amount):  # noqa: F811
    # PostgreSQL would round it up to 1E+19 and refuse it ("numeric field overflow")
    with time_machine.travel(NOW, tick=False):
        response = api.post("/api/v2/customers/acme/entitlements/tokens/grants",
                            {"amount": amount, "effectiveAt": "2026-03-01T00:00:00Z"}, format="json")
    assert response.status_code == 400, response.content
    assert "out of range: must be less than 1E+19 in magnitude" in response.json()["detail"]


def test_a_saved_value_is_checked_at_the_scale_the_column_rounds_it_to():
    from openmeter_site.core.fields import fits_column

    assert fits_column(Decimal("9999999999999999999.9999999999999999999"))
    assert fits_column(Decimal("-9999999999999999999.99999999999999999994"))  # rounds down, to 19 nines
    assert not fits_column(Decimal("9999999999999999999.99999999999999999995"))  # rounds up, to 1E+19
    assert not fits_column(Decimal("1E+300")) and fits_column(Decimal("1E-300"))


@pytest.mark.parametrize(("value", "written"), [
    ("9999999999999999999.9999999999999999999", "9999999999999999999.9999999999999999999"),
    ("1234567890.12345678901234567890000", "1234567890.1234567890123456789"),
    ("27000000000000000000.5000000000000000000", "27000000000000000000.5"),
])
def test_decimals_are_written_with_every_digit(value, written):
    # Decimal.normalize() alone rounds to 28 digits: the first became 10000000000000000000
    from entitlements.api.render import num
    from notifications.payloads import number_str
    from openmeter_site.api.fields import NumericField

    assert NumericField().to_representation(Decimal(value)) == written
    assert number_str(Decimal(value)) == written
    assert str(num(Decimal(value))) == written
