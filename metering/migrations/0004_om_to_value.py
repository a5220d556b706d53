from django.db import migrations

# A meter value: a number (or numeric string) within NUMERIC(38,19), at scale 19, else NULL (skipped).
# Raw queries and rollups both read values through this, so both compute with the same scale.
FUNCTIONS = r"""
-- Numeric strings with at most 3 exponent digits: '1e999999' would overflow NUMERIC and fail the whole query.
CREATE OR REPLACE FUNCTION om_to_numeric(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE jsonb_typeof(v)
    WHEN 'number' THEN (v #>> '{}')::numeric
    WHEN 'string' THEN CASE WHEN (v #>> '{}') ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$'
                            THEN trim(v #>> '{}')::numeric END
  END
$$;

CREATE OR REPLACE FUNCTION om_to_value(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN abs(om_to_numeric(v)) < 1e19 THEN om_to_numeric(v)::numeric(38,19) END
$$;
"""

DROP = "DROP FUNCTION IF EXISTS om_to_value(jsonb);"


class Migration(migrations.Migration):
    dependencies = [("metering", "0003_rollup_composite_key")]
    operations = [migrations.RunSQL(FUNCTIONS, DROP)]
