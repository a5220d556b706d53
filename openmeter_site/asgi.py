import gc
import os

from django.core.asgi import get_asgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "openmeter_site.settings")
application = get_asgi_application()

# As in wsgi.py: load every view at start, and keep the app's own objects out of garbage collections.
get_resolver().url_patterns  # noqa: B018
gc.freeze()
