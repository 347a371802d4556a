"""Adapters: the only modules that import Google's clients, sqlite3 or read the clock
(google.* elsewhere: the VM's tokens and the Firestore event's protobuf, docs/architecture.md).

Modules, by port: ``firestore_store`` and ``sqlite_store`` (Store), ``compute_engine``
(Compute), ``pubsub`` and ``pubsub_rest`` (Publisher: Google's client, or the REST API of
the emulator and the local bus), ``cloud_storage`` and ``local_storage`` (Storage),
``cloud_scheduler`` (Scheduler), ``clock`` (Clock), ``identity_tokens``
(IdentityVerifier, and the local stack's token signing), ``upstream_http`` (the gateway's
Upstream to the VMs), ``model_server`` (ModelServer: readiness and load of any
OpenAI-compatible server).
"""
