"""The router of the API's ViewSets: OpenMeter's paths have no trailing slash and their path parameters use the
`seg` converter (a segment that may hold any percent-encoded character)."""

from rest_framework.routers import SimpleRouter
from rest_framework.viewsets import GenericViewSet


class Router(SimpleRouter):
    def __init__(self) -> None:
        super().__init__(trailing_slash=False, use_regex_path=False)


class ResourceViewSet(GenericViewSet):
    """A resource with the usual verbs: `list`, `create`, `retrieve`, `update` (PUT), `destroy`, and `@action`s."""

    lookup_value_converter = "seg"
