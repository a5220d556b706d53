SCHEDULES = [
    ("notifications: re-enqueue lost webhook deliveries", "notifications.dispatch_due", 60),
    ("notifications: balance thresholds of new usage", "notifications.evaluate_new_usage", 60),
    ("notifications: balance thresholds of every metered entitlement", "notifications.evaluate_all_thresholds", 900),
    ("notifications: entitlement reset events", "notifications.emit_recent_resets", 60),
]
