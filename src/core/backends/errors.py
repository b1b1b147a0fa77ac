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
