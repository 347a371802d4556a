"""yoyo-worker: runs a pool's batch shards against the VM's model server.

Modules: ``shard`` (one shard: resume from checkpoints, bounded concurrency, durable
results), ``queue`` (the pool's work subscription over Pub/Sub's REST API; the
``ports.WorkQueue`` the loop uses), ``loop`` (pull while the model server is ready, keep
the ack deadline extended, acknowledge after), ``config`` (the configuration file),
``__main__`` (the unit's entry point). Composed by the VM's root (machine.py).
Invariant: nothing here imports ``local``.
"""
