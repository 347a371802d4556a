"""The OpenAI-compatible gateway: one endpoint that wakes a pool, holds requests through
the cold start and forwards them (streams included) to the pool's ready VMs.

Modules: ``routing`` (pure: which VM, whether to wake, whether to refuse), ``auth``
(hashed bearer keys), ``app`` (the HTTP handler behind the ``gateway`` entry point),
``batches`` (``/v1/files`` and ``/v1/batches`` over batch.service), ``coldstarts`` (the
record of each cold start's phases), ``reply`` (OpenAI-shaped errors and answers).
Composed by the control plane's root (bootstrap.build_gateway).
"""
