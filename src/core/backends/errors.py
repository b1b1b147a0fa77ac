"""Errors a remote backend raises, each saying what the user can do about it.

They subclass RuntimeError so a caller that only knows "the backend failed" still catches them.
"""

from __future__ import annotations


class BackendError(RuntimeError):
    """A remote backend could not do what was asked."""


class CredentialsMissing(BackendError):
    """No token for the service was found where its client looks."""


class QuotaExceeded(BackendError):
    """The service refused the job for a quota or concurrency limit; retrying now will not help."""


class RemoteOutputInvalid(BackendError):
    """Downloaded outputs are not what the stage runner writes (e.g. an HTTP error page)."""


class ShippingError(BackendError):
    """A local input named by the stage cannot be shipped (missing, or outside what can be sent)."""


class ServiceUnavailable(BackendError):
    """A transient failure talking to the service (network, rate limit, 5xx): the job itself is
    unaffected; the watch loop retries with back-off and counts these."""


class JobNotFound(BackendError):
    """The service does not know the job, kernel or dataset (wrong name, deleted, or not visible to
    this account)."""
