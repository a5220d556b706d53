"""Who receives which domain events: filled in the apps' `AppConfig.ready`, read by `publish` and the relay.

A handler is named (the name is stored on each delivery row, so it must stay stable across releases) and must be
idempotent: delivery is at least once.
"""

from collections import defaultdict
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

from openmeter_site.outbox.models import OutboxEvent

Handler = Callable[[OutboxEvent], None]

_handlers: dict[str, dict[str, Handler]] = defaultdict(dict)


def subscribe(topic: str, name: str, handler: Handler) -> None:
    known = _handlers[topic].get(name)
    if known is not None and known is not handler:
        raise ImproperlyConfigured(f"outbox handler {name!r} of {topic!r} is registered twice")
    _handlers[topic][name] = handler


def handler_names(topic: str) -> list[str]:
    return sorted(_handlers.get(topic, {}))


def handler_for(topic: str, name: str) -> Handler | None:
    return _handlers.get(topic, {}).get(name)
