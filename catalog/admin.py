

import catalog.admin_plans  # noqa: F401  (registers the plan and add-on back office)
