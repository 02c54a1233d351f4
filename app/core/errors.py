"""The errors a request can end in, each tied to the HTTP status the node must see.

The node shows ``name: message`` only when ``error`` is an object, and retries 5xx but not 4xx, so every failure
path raises one of these instead of letting an exception reach Flask's HTML error pages.
"""

from __future__ import annotations

from typing import Any


class AdapterError(Exception):
    """A failure that is answered as ``{jobRunID, status, statusCode, error: {name, message}}``."""

    status_code = 500
    name = "AdapterError"

    def __init__(self, message: str, *, provider_status_code: int | None = None,
                 status_code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider_status_code = provider_status_code
        if status_code is not None:
            self.status_code = status_code
        if name is not None:
            self.name = name

    def body(self) -> dict[str, Any]:
        """The response body without ``jobRunID`` (added per request), so it can be cached and shared."""
        body: dict[str, Any] = {"status": "errored", "statusCode": self.status_code}
        if self.provider_status_code is not None:
            body["providerStatusCode"] = self.provider_status_code
        body["error"] = {"name": self.name, "message": self.message}
        return body


class AdapterInputError(AdapterError):
    status_code = 400
    name = "AdapterInputError"


class UnauthorizedError(AdapterError):
    """EA_AUTH_TOKEN is set and the request did not carry it (whatever was wrong, the answer is the same)."""

    status_code = 401
    name = "AdapterUnauthorizedError"


class ForbiddenError(AdapterError):
    """EA_ALLOWED_IPS is set and the client's address is not in it."""

    status_code = 403
    name = "AdapterForbiddenError"


class EndpointNotFoundError(AdapterError):
    status_code = 404
    name = "AdapterEndpointNotFoundError"


class PayloadTooLargeError(AdapterError):
    status_code = 413
    name = "AdapterPayloadTooLargeError"


class RateLimitError(AdapterError):
    """No provider call may be made now without exceeding the provider's quota, and nothing is cached."""

    status_code = 429
    name = "AdapterRateLimitError"


class DataProviderError(AdapterError):
    """The provider answered, but not with what was asked (error status, bad JSON, missing pair)."""

    status_code = 502
    name = "AdapterDataProviderError"


class ConnectionFailedError(AdapterError):
    """The provider could not be reached at all."""

    status_code = 502
    name = "AdapterConnectionError"


class ProviderTimeoutError(AdapterError):
    status_code = 504
    name = "AdapterTimeoutError"


class ServiceUnavailableError(AdapterError):
    status_code = 503
    name = "AdapterServiceUnavailableError"


class SharedStoreUnavailable(ServiceUnavailableError):
    """Redis (CACHE_TYPE=redis) did not answer; what this process holds itself is all it can serve."""

    name = "AdapterSharedStoreUnavailableError"
