"""What `OPTIONS` answers: the allowed methods (the Allow header) and no body.

DRF's SimpleMetadata describes a view from its `serializer_class`, which the ViewSets do not declare (each action
validates with serializers of its own), so it failed with a 500; it also published the views' docstrings.
"""

from typing import Any

from rest_framework.metadata import BaseMetadata
from rest_framework.request import Request


class AllowedMethodsOnly(BaseMetadata):
    def determine_metadata(self, request: Request, view: Any) -> None:
        return None
