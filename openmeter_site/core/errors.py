"""Domain errors raised by services; the API maps each to one problem+json status."""

from typing import Any


class DomainError(Exception):
    status = 400

    def __init__(self, detail: str, *, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions or {}


class InvalidInput(DomainError):
    status = 400


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Forbidden(DomainError):
    status = 403


class PreconditionFailed(DomainError):
    status = 412


class PayloadTooLarge(DomainError):
    status = 413


class NotImplementedOffline(DomainError):
    status = 501


class FailedDependency(DomainError):
    status = 424


class ServiceUnavailable(DomainError):
    status = 503
