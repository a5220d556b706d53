"""`{% dashboard %}`: the back office's front page panels (backoffice.dashboard), on the admin index."""

import datetime as dt
from typing import Any

from django import template
from django.urls import reverse

from backoffice.dashboard import dashboard
from openmeter_site.admin_ui.charts import bar_chart
from openmeter_site.admin_ui.display import money, money_text
from openmeter_site.core.admin import elapsed_text, run_summary
from openmeter_site.core.jobs import last_run_of

register = template.Library()


@register.inclusion_tag("admin/backoffice/dashboard.html")
def dashboard_panels() -> dict[str, Any]:
    board = dashboard()
    invoices = reverse("admin:billing_invoice_changelist")
    return {
        "board": board,
        "revenue_charts": [
            bar_chart([m.strftime("%b %Y") for m, _ in r.months], [v for _, v in r.months],
                      title=f"{r.currency}: {money_text(sum(v for _, v in r.months), r.currency)} billed in 12 "
                            "months (invoices issued, not voided)",
                      value_text=lambda v, c=r.currency: money_text(v, c))
            for r in board.revenue
        ],
        "owed_rows": [(o.currency, money(o.outstanding, o.currency), o.outstanding_count,
                       money(o.overdue, o.currency), o.overdue_count) for o in board.owed],
        "outstanding_url": f"{invoices}?owed=outstanding",
        "overdue_url": f"{invoices}?owed=overdue",
        "webhooks_url": reverse("admin:notifications_notificationdelivery_changelist") + "?state__exact=FAILED",
        "fold_oldest": elapsed_text(dt.timedelta(seconds=board.fold_oldest_seconds)),
        "outbox_oldest": elapsed_text(dt.timedelta(seconds=board.outbox_oldest_seconds)),
        "job_rows": [(job, run_summary(last_run_of(job)),
                      reverse("admin:django_celery_beat_periodictask_do", args=[job.pk, "run_now"]))
                     for job in board.jobs],
        "jobs_url": reverse("admin:django_celery_beat_periodictask_changelist"),
    }
