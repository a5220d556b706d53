from functools import partial

from django.db import models

# One column type for money and quantities: room for OpenMeter's Decimal128(19) meter values.
DecimalColumn = partial(models.DecimalField, max_digits=38, decimal_places=19)
