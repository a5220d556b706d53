from django.db import migrations

# A meter value is read when it is under 1E+19 once rounded to scale 19, as NUMERIC(38, 19) stores it: a value with
# more decimals just under the limit (9999999999999999999.99999999999999999999) passed the check, rounded up to
# 1E+19 in the cast and failed with "numeric field overflow" every query and fold that read its event.
FUNCTION = r"""
CREATE OR REPLACE FUNCTION om_to_value(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN abs(round(om_to_numeric(v), 19)) < 1e19 THEN om_to_numeric(v)::numeric(38,19) END
$$;
"""

PREVIOUS = r"""
CREATE OR REPLACE FUNCTION om_to_value(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN abs(om_to_numeric(v)) < 1e19 THEN om_to_numeric(v)::numeric(38,19) END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("metering", "0009_clickhouse_meter_views")]
    operations = [migrations.RunSQL(FUNCTION, PREVIOUS)]
