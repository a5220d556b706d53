SCHEDULES = [
    ("Record entitlement usage-period resets and boundary snapshots", "entitlements.reset_due", 300),
]
