"""Progressive billing: a usage line invoiced before its period ends is split into the part billed now and the
rest, which stays pending; the parts share a split group with the line's full period, so the later parts are rated
as the continuation of the earlier ones (tiers, packages, free units, spend commitments).

Which lines can be split follows OpenMeter's progressive pricers: usage prices other than volume tiers, on meters
whose value can only grow within a period (SUM, COUNT, MAX, UNIQUE_COUNT); an AVG, MIN or LATEST meter, a
volume-tiered or a flat price is billed whole once its period has ended.
"""

import datetime as dt
from collections.abc import Sequence

from billing.models import InvoiceLine
from billing.services.calculation import features_by_key, is_flat
from metering.models import MeterAggregation
from openmeter_site.core.ids import new_id

GROWING_AGGREGATIONS = {MeterAggregation.SUM, MeterAggregation.COUNT, MeterAggregation.MAX,
                        MeterAggregation.UNIQUE_COUNT}


def splittable_at(lines: Sequence[InvoiceLine], as_of: dt.datetime) -> set[str]:
    """Ids of the lines that can be billed up to `as_of` now and the rest later."""
    candidates = [
        line for line in lines
        if not is_flat(line) and (line.price or {}).get("mode") != "volume"
        and line.period_start < as_of < line.period_end
    ]
    features = features_by_key(line.feature_key or "" for line in candidates)
    return {
        line.pk for line in candidates
        if (f := features.get(line.feature_key or "")) is not None and f.meter is not None
        and f.meter.aggregation in GROWING_AGGREGATIONS
    }


def split_at(line: InvoiceLine, as_of: dt.datetime) -> InvoiceLine:
    """Bill [start, as_of) now; the rest stays pending as a new line of the same group. The first part keeps the
    line's subscription-sync key, so the sync finds the group."""
    if line.split_group_id is None:
        line.split_group_id = new_id()
        line.split_group_start = line.period_start
        line.split_group_end = line.period_end
    rest = InvoiceLine(
        invoice_id=line.invoice_id, managed_by=line.managed_by, name=line.name, description=line.description,
        metadata=line.metadata, currency=line.currency, period_start=as_of, period_end=line.period_end,
        invoice_at=line.invoice_at, price=line.price, feature_key=line.feature_key, tax_config=line.tax_config,
        rate_card_discounts=line.rate_card_discounts, split_group_id=line.split_group_id,
        split_group_start=line.split_group_start, split_group_end=line.split_group_end,
        subscription_id=line.subscription_id, subscription_phase_id=line.subscription_phase_id,
        subscription_item_id=line.subscription_item_id,
        subscription_billing_period_start=line.subscription_billing_period_start,
        subscription_billing_period_end=line.subscription_billing_period_end,
    )
    line.period_end = as_of
    line.invoice_at = as_of
    line.save(update_fields=["split_group_id", "split_group_start", "split_group_end", "period_end", "invoice_at"])
    rest.save()
    return line
