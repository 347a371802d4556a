"""Batch inference: OpenAI Batch files in Storage, shards on each pool's work queue.

Parts: ``work`` (storage layout and the work message, docs/messages.md), ``service``
(submit, status, cancel, results, finalize), ``cli`` (``yoyoctl batch``). The worker
that runs shards on a VM is ``yoyo_control.worker``.
"""
