"""Domain errors. The API maps each to its HTTP status and error code (docs/api.md)."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "bad_request"
    # When True the unit of work commits even though the request fails (e.g. a revocation).
    persist = False

    def __init__(self, message: str, *, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Unavailable(ServiceError):
    status = 503
    code = "unavailable"


class TooLarge(ServiceError):
    status = 413
    code = "too_large"


class UnsupportedType(ServiceError):
    status = 415
    code = "unsupported_type"


class InsufficientBalance(ServiceError):
    status = 402
    code = "insufficient_balance"


class AccountLocked(ServiceError):
    status = 423
    code = "account_locked"
    persist = True  # the failure that locked it is recorded


class RateLimited(ServiceError):
    """Too many requests; ``retry_after`` seconds until the next one may pass (the Retry-After header)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float, *, details: Any = None):
        super().__init__(message, details={"retry_after": int(retry_after), **(details or {})})
        self.retry_after = int(retry_after)


class Overloaded(ServiceError):
    """The system cannot take this work now; nothing was done. Retry after ``retry_after`` seconds."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int, *, reason: str, **details: object):
        super().__init__(message, details={"reason": reason, "retry_after": retry_after, **details})
        self.retry_after = retry_after


class ValidationFailed(ServiceError):
    """A rule beyond the schema; ``details`` lists the fields like a schema violation does."""

    status = 422
    code = "validation_error"
