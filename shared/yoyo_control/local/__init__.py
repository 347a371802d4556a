"""The local stack (``make run`` = ``yoyoctl local up``): the whole control plane on one machine.

Parts: ``bus`` (Pub/Sub-shaped push bus + work queue), ``scheduler`` (cron → cycle/tick),
``killwatch`` (kill-switch document → Firestore-written CloudEvent), ``compute`` and
``supervisor`` (local "VMs" as process groups), ``vm`` and ``inference`` (what runs inside a
local VM), ``stack`` (wires it all on one HTTP server), ``emulators`` (Google's Firestore and
Pub/Sub emulators for the ``--emulators`` profile).

Invariant: importing this package imports nothing heavy (a local VM's processes import
modules from here and must start fast).
"""
