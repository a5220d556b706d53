"""Entitlement value reads (HOT PATH): one statement finds a customer's entitlement and everything its value needs.

`customers.entitlements.value` is called by a product's backend on every request it serves. The ORM would
spend about a millisecond compiling each of the five or six queries that the precise selectors in
`entitlements.services` run; here one plain-SQL statement resolves the live customer (id or key), its
entitlement (by id, or the one of the feature active at `at`), the feature, the meter, the customer's
subjects, and the engine's inputs (grants, resets, newest snapshot). The rows become model instances with
`Model.from_db`, so the rest of the read (`entitlements.balance`) is the same code as everywhere else.

Anything unusual (no such customer, no entitlement active at `at`, an id that is really a feature key) finds no
row here, and the caller falls back to the precise selectors, which also raise the right 404.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import connection, models

from catalog.models import Feature
from entitlements.balance import Inputs, input_columns, parse_inputs
from entitlements.models import Entitlement
from metering.models import Meter
from openmeter_site.core.ids import is_ulid
from openmeter_site.core.sql import fetch_prepared


def _fields(model: type[models.Model], *names: str) -> list[models.Field]:
    """In the model's field order, as `Model.from_db` expects the values of a subset."""
    fields = [f for f in model._meta.concrete_fields if f.name in names]
    assert len(fields) == len(names), f"unknown field among {names}"
    return fields


# What a value read uses (other fields are deferred: the ORM would load them on first access).
_ENTITLEMENT = _fields(
    Entitlement, "id", "created_at", "updated_at", "deleted_at", "customer", "feature", "feature_key", "type",
    "active_from", "active_to", "config", "usage_period_interval", "usage_period_anchor", "measure_usage_from",
    "is_soft_limit", "preserve_overage_at_reset", "issue_after_reset", "issue_after_reset_priority",
)
_FEATURE = _fields(Feature, "id", "key", "meter", "meter_slug", "meter_group_by_filters",
                   "advanced_meter_group_by_filters", "archived_at")
_METER = _fields(Meter, "id", "slug", "aggregation", "event_type", "event_from", "value_property", "group_by",
                 "backfill_cursor", "deleted_at")


def _columns(alias: str, fields: Sequence[models.Field]) -> str:
    return ", ".join(f"{alias}.{f.column} AS {alias}_{f.column}" for f in fields)


def _statement(entitlement_match: str) -> str:
    return f"""
SELECT found.*, {input_columns("found.e_id")}
FROM (
  SELECT {_columns("e", _ENTITLEMENT)}, {_columns("f", _FEATURE)}, {_columns("m", _METER)},
         (SELECT coalesce(array_agg(s.subject_key ORDER BY s.id), '{{}}') FROM customers_customersubject s
           WHERE s.customer_id = c.id) AS subjects,
         c.key AS customer_key
  FROM entitlements_entitlement e
  JOIN customers_customer c ON c.id = e.customer_id
  JOIN catalog_feature f ON f.id = e.feature_id
  LEFT JOIN metering_meter m ON m.id = f.meter_id
  WHERE c.deleted_at IS NULL AND (c.key = %(owner)s OR c.id = %(owner_id)s) AND {entitlement_match}
  ORDER BY e.active_from DESC
  LIMIT 1
) AS found
"""


_BY_ID = _statement("e.id = %(entitlement_id)s")
_ACTIVE_OF_FEATURE = _statement(
    "e.feature_key = %(feature_key)s AND e.active_from <= %(at)s AND (e.active_to IS NULL OR e.active_to > %(at)s)"
    " AND (e.deleted_at IS NULL OR e.deleted_at > %(at)s)"
)


def _instance(model: type[models.Model], fields: Sequence[models.Field], values: Sequence[Any]) -> Any:
    """A model instance from raw column values, converted as the ORM would (JSON columns arrive as text)."""
    converted = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def entitlement_with_inputs(
    *, customer_id_or_key: str, id_or_feature_key: str, at: dt.datetime
) -> tuple[Entitlement, Inputs] | None:
    """The customer's entitlement (by id, else of that feature active at `at`) and its engine inputs at `at`,
    or None (the caller then uses the precise selectors)."""
    params = {
        "owner": customer_id_or_key,
        "owner_id": customer_id_or_key.upper() if is_ulid(customer_id_or_key) else None,
        "entitlement_id": id_or_feature_key.upper(),
        "feature_key": id_or_feature_key,
        "at": at,
    }
    rows = fetch_prepared(_BY_ID if is_ulid(id_or_feature_key) else _ACTIVE_OF_FEATURE, params)
    if not rows:
        return None
    [row] = rows
    n_e, n_f, n_m = len(_ENTITLEMENT), len(_FEATURE), len(_METER)
    entitlement = _instance(Entitlement, _ENTITLEMENT, row[:n_e])
    feature = _instance(Feature, _FEATURE, row[n_e:n_e + n_f])
    meter_values = row[n_e + n_f:n_e + n_f + n_m]
    feature.meter = _instance(Meter, _METER, meter_values) if meter_values[0] is not None else None
    entitlement.feature = feature
    subjects, customer_key, resets_json, grants_json, snapshot_json = row[n_e + n_f + n_m:]
    if customer_key and customer_key not in subjects:
        subjects = [*subjects, customer_key]  # as Customer.subject_keys()
    return entitlement, parse_inputs(resets_json, grants_json, snapshot_json, subjects=list(subjects), fresh_meter=True)
