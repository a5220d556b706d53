"""Portal tokens authenticate the portal meter query and nothing else (the spec's `PortalTokenAuth`)."""

from rest_framework import authentication, permissions
from rest_framework.request import Request

from openmeter_site.api.auth import bearer_token
from portal.models import PortalToken
from portal.services import portal_token_authenticate


class PortalTokenAuthentication(authentication.BaseAuthentication):
    """Only for the portal views: any failure is a 401 problem; API keys are not portal tokens."""

    def authenticate(self, request: Request) -> tuple[None, PortalToken]:
        return (None, portal_token_authenticate(raw=bearer_token(request)))

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class IsPortalToken(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, PortalToken)
