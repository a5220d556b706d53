from django.db import migrations

# JSON value extraction shared by ingest-time rollups and raw queries. IMMUTABLE so they can be inlined.
FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION om_to_numeric(v jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE jsonb_typeof(v)
    WHEN 'number' THEN (v #>> '{}')::numeric
    WHEN 'string' THEN CASE WHEN (v #>> '{}') ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'
                            THEN trim(v #>> '{}')::numeric END
  END
$$;

CREATE OR REPLACE FUNCTION om_to_text(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(v) IN ('string', 'number', 'boolean') THEN v #>> '{}' END
$$;
"""

DROP = "DROP FUNCTION IF EXISTS om_to_numeric(jsonb); DROP FUNCTION IF EXISTS om_to_text(jsonb);"


class Migration(migrations.Migration):
    dependencies = [("metering", "0001_initial")]
    operations = [migrations.RunSQL(FUNCTIONS, DROP)]
