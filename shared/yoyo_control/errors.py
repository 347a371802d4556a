"""Error kinds, mapped to Pub/Sub behaviour in exactly one place (functions/main.py).

- ``InvalidMessage``: the payload is malformed or foreign → logged, acknowledged.
- ``TemporaryError``: contention, Compute 429/5xx/timeouts → raise, Pub/Sub redelivers.
- ``PermanentError``: instance missing, quota, permission → recorded, not retried forever.
  ``InstanceNotFound``, its kind for a missing instance, is what every Compute adapter
  raises when the instance does not exist (the service records it as ``not-found``).
- ``CapacityError``: the zone has no capacity for the instance now (a stockout) → its own
  outcome: the zone backs off and the next healthy zone is tried at once; not permanent,
  and never retried in the same zone at once (domain/capacity.py).
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


class InstanceNotFound(PermanentError):
    """The Compute instance addressed does not exist (HTTP 404 on the instance)."""


class CapacityError(YoyoError):
    """The zone refused the start for lack of capacity (ZONE_RESOURCE_POOL_EXHAUSTED…)."""


class ConfigError(YoyoError):
    """The configuration is invalid (a deployment mistake, reported at start-up)."""
