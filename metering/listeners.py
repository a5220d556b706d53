"""Who wants to hear that usage was stored (HOT PATH). Apps above metering register a callback in their
`AppConfig.ready`; metering never names them.

This is a hint, not a domain event: the stored events are the durable record, and each listener's periodic job
reads them anyway. So a listener must be cheap and must never fail or stall the request.
"""

from collections.abc import Callable

_usage_ingested: list[Callable[[], None]] = []


def on_usage_ingested(callback: Callable[[], None]) -> None:
    if callback not in _usage_ingested:
        _usage_ingested.append(callback)


def usage_ingested() -> None:
    """After an ingest request stored new events."""
    for callback in _usage_ingested:
        callback()
