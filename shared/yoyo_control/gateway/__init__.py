"""The OpenAI-compatible gateway: one endpoint that wakes a pool, holds requests through
the cold start and forwards them (streams included) to the pool's ready VMs.

Parts: ``routing`` (pure: which VM, whether to wake, whether to refuse), ``auth``
(hashed bearer keys), ``app`` (the HTTP handler behind the ``gateway`` entry point).
"""
