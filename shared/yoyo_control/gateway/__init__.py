"""The OpenAI-compatible gateway: one endpoint that wakes a pool, holds requests through
the cold start and forwards them (streams included) to the pool's ready VMs.

Parts: ``routing`` (pure: which VM, whether to wake, whether to refuse), ``hold`` (pure:
one request's decision — refuse, forward to a VM, or wait — and the held limit),
``view`` (the kill switch and pools as read from the store, sparingly; what a held
request awaits), ``forward`` (holding, waking, forwarding, retrying one request),
``load`` (this instance's load per pool, reported to the control plane), ``app`` (the
async HTTP shell behind the ``gateway`` entry point), ``body`` (bounded request bodies),
``bridge`` (``/v1/files`` and ``/v1/batches`` from the async shell), ``batches``
(OpenAI's Files and Batch API), ``reply`` (OpenAI-format errors, JSON), ``auth`` (hashed
bearer keys), ``coldstarts`` (cold starts read back from the event log), ``wire`` (what
the gateway tells the control plane, as messages on the queue topic).
Composed by the control plane's root (bootstrap.build_gateway).
"""
