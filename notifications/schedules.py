SCHEDULES = [
    ("notifications: re-enqueue lost webhook deliveries", "notifications.dispatch_due", 60),
]
