from catalog import admin_features  # noqa: F401  (Feature admin)
