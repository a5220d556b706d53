SCHEDULES = [
    ("Provision entitlements for subscription items that started", "subscriptions.sync_entitlements_due", 60),
]
