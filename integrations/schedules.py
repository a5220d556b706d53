SCHEDULES = [
    ("Retry failed Stripe invoice syncs (exponential backoff)", "integrations.stripe_sync_retry_due", 60),
]
