"""Batch inference: OpenAI Batch files in Storage, shards on each pool's work queue.

Modules: ``files`` (the input file: checked, stored), ``work`` (storage layout and the
work message, docs/messages.md), ``service`` (submit, status, cancel, retry, results),
``controller`` (the batch controller's shell: counts, republishes, finalizes; never in
the lifecycle tick) and ``finalize`` (the output files, streamed). ``yoyoctl batch`` is
cli/batch.py; the worker that runs shards on a VM is ``yoyo_control.worker``.
"""
