"""Error kinds, mapped to Pub/Sub behaviour in exactly one place (functions/main.py).

- ``InvalidMessage``: the payload is malformed or foreign → logged, acknowledged.
- ``TemporaryError``: contention, Compute 429/5xx/timeouts → raise, Pub/Sub redelivers.
- ``PermanentError``: instance missing, quota, permission → recorded, not retried forever.
"""

from __future__ import annotations


class YoyoError(Exception):
    """Base of the control plane's own errors."""


class InvalidMessage(YoyoError):
    """The message cannot be acted on; redelivering it would not help."""


class TemporaryError(YoyoError):
    """Worth retrying: the same request may succeed later."""


class PermanentError(YoyoError):
    """Retrying the same request will fail the same way."""


class ConfigError(YoyoError):
    """The configuration is invalid (a deployment mistake, reported at start-up)."""
