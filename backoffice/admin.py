"""Back office pages that read several domains; each domain app's own admin stays in that app."""
from django.contrib import admin

admin.site.site_header = "OpenMeter back office"
admin.site.site_title = "OpenMeter back office"
admin.site.index_title = "Billing operations"
# the front page: the dashboard (backoffice.dashboard) above the list of apps
admin.site.index_template = "admin/backoffice/index.html"
