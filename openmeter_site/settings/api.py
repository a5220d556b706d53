"""Django REST framework."""

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["openmeter_site.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["openmeter_site.api.auth.IsApiKey"],
    # Per-key limits, off unless OPENMETER_API_RATE_LIMIT / OPENMETER_INGEST_RATE_LIMIT are set.
    "DEFAULT_THROTTLE_CLASSES": ["openmeter_site.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["openmeter_site.api.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["openmeter_site.api.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "openmeter_site.api.filters.OrderByFilter",
    ],
    "DEFAULT_METADATA_CLASS": "openmeter_site.api.metadata.AllowedMethodsOnly",
    "EXCEPTION_HANDLER": "openmeter_site.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
    "URL_FORMAT_OVERRIDE": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
