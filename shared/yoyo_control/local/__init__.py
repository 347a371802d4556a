"""The local stack (``make run`` = ``yoyoctl local up``): the laptop's adapters and its supervisor.

Modules: ``bus`` (Pub/Sub-shaped push bus + work queue), ``bridge`` (the same deliveries
from Google's Pub/Sub emulator), ``envelope`` (the CloudEvents they push), ``scheduler``
(cron → cycle/tick), ``killwatch`` (kill-switch document → Firestore-written CloudEvent),
``compute`` and ``supervisor`` (local "VMs" as process groups), ``vm`` and ``inference``
(what runs inside a local VM: the configured model server, else the simulated vLLM, and
the real agent and worker), ``stack`` (wires it all on one HTTP server), ``serving``
(that server: uvicorn, the gateway's ASGI app on /v1, the rest through a2wsgi),
``guard`` (only the operator may call it), ``identity`` (the stack's signing key),
``store`` (SQLite or the Firestore emulator), ``operator`` (what yoyoctl does to the
stack directly), ``logview`` (its console), ``emulators`` (Google's Firestore and
Pub/Sub emulators for the ``--emulators`` profile).

Invariants: only the local root (laptop.py) imports this package from outside it, and it
imports no root; importing it imports nothing heavy (a local VM's processes start fast).
"""
