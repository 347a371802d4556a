"""Yo-Yo control plane: GPU VMs on Google Cloud that run only while there is work.

Layout (docs/architecture.md draws it; tests/unit/test_layers.py checks it):
- the roots, one per kind of process: ``bootstrap`` (the control plane: the functions and
  the gateway; also the shared adapter builders, the one switch between backends),
  ``cli`` (the operator: ``yoyoctl``), ``machine`` (the VM: agent and worker), ``laptop``
  (the local stack: the only importer of ``local``);
- the work: ``service`` (the transaction boundary), ``gateway``, ``batch``, ``agent``,
  ``worker``, ``sim``; the operator's views ``statusview`` and ``statuspage``;
- the edges: ``messages`` (decoding events), ``identity`` (heartbeat admission),
  ``config``, ``schedule``, ``names``, ``errors``, ``logs``, ``jsonhttp``;
- ``ports`` are the Protocols; ``adapters`` hold the control plane's Google clients,
  sqlite3 and the clock (google.* elsewhere: docs/architecture.md); ``local`` the
  laptop's adapters and its supervisor; ``domain`` is pure.
"""

__version__ = "0.1.0"
