"""Django REST framework and drf-spectacular."""

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["openmeter_site.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["openmeter_site.api.auth.IsApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["openmeter_site.api.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["openmeter_site.api.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "openmeter_site.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
    "URL_FORMAT_OVERRIDE": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "OpenMeter-compatible API (Django)",
    "DESCRIPTION": "Usage metering, entitlements and billing. Compatible with the OpenMeter API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}
