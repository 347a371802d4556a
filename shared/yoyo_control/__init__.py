"""Yo-Yo control plane: GPU VMs on Google Cloud that run only while there is work.

Layout (DESIGN.md §5): ``domain`` is pure; ``ports`` are the Protocols; ``adapters``
hold every import of google.*, sqlite3 and the clock; ``service`` is the transaction
boundary; ``bootstrap`` is the one composition root.
"""

__version__ = "0.1.0"
