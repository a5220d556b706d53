from catalog import (
    admin_features,  # noqa: F401  (Feature admin)
    admin_plans,  # noqa: F401  (plan and add-on back office)
)
