"""yoyo-worker: runs a pool's batch shards against the VM's local inference server.

Parts: ``shard`` (one shard: resume from checkpoints, bounded concurrency, durable
results), ``queue`` (the pool's work subscription over Pub/Sub's REST API), ``__main__``
(the unit's entry point: pull, keep the ack deadline extended, acknowledge after).
"""
