"""Developer tooling run from a checkout (``python -m tools.<name>``); never deployed."""
