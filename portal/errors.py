from openmeter_site.core.errors import DomainError


class PortalUnauthorized(DomainError):
    """No, an unknown, an expired or an invalidated portal token: 401."""

    status = 401
