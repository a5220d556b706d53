"""The database's length limits, read from the models: the one source of the most characters an input may have
when it is stored in a CharField (API serializer fields take their `max_length` from here)."""

from django.db import models

from openmeter_site.core.errors import InvalidInput

# The spec's maxLength of every resource's description (customers, profiles, invoices and their lines, apps), also
# where the column is a TextField.
DESCRIPTION_LENGTH = 1024


def column_length(model: type[models.Model], field: str) -> int:
    """The `max_length` of the model's CharField `field`."""
    column = model._meta.get_field(field)
    if not isinstance(column, models.CharField) or column.max_length is None:
        raise TypeError(f"{model.__name__}.{field} is not a CharField with a max_length")
    return column.max_length


def check_length(value: str | None, *, model: type[models.Model], field: str, name: str) -> None:
    """For inputs no serializer reads (webhook payloads): a 400 naming `name` when `value` would not fit."""
    limit = column_length(model, field)
    if value is not None and len(value) > limit:
        raise InvalidInput(f"{name}: at most {limit} characters (got {len(value)})")
