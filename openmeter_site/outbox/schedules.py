SCHEDULES = [
    ("Outbox: relay domain events (behind the kick after each commit)", "outbox.relay", 10),
    ("Outbox: delete domain events delivered over a week ago", "outbox.purge_delivered", 3600),
]
