"""Replies stored before only an excerpt was kept: cut to 200 characters without control characters, as
`notifications.delivery.response_excerpt` keeps them now."""

from django.db import migrations

EXCERPT_SQL = """
UPDATE notifications_notificationdeliveryattempt
SET response_body = left(btrim(regexp_replace(response_body, '[[:cntrl:][:space:]]+', ' ', 'g')), 200)
WHERE length(response_body) > 200 OR response_body ~ '[[:cntrl:]]'
"""


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0002_evaluation_cursor'),
    ]

    operations = [
        migrations.RunSQL(EXCERPT_SQL, reverse_sql=migrations.RunSQL.noop),
    ]
