SCHEDULES = [
    ("Fold pending events into meter rollups", "metering.fold_pending", 5),
    ("Resume interrupted meter rollup backfills", "metering.resume_backfills", 300),
    ("Event store upkeep: partitions ahead, de-duplication keys, retention", "metering.events_maintain", 3600),
]
