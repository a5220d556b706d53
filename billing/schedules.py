SCHEDULES = [
    ("Billing: sync subscriptions into pending invoice lines", "billing.sync_subscriptions", 300),
    ("Billing: collect gathering invoices (period close)", "billing.collect_gathering_invoices", 300),
    ("Billing: auto-advance due draft invoices", "billing.advance_due_invoices", 60),
    ("Billing: sync invoices with remote invoicing apps", "billing.sync_remote_apps", 60),
    ("Billing: mark unpaid invoices overdue", "billing.mark_overdue_invoices", 900),
]
