"""Adapters: the only modules that import google.*, sqlite3 or read the clock."""
