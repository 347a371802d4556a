"""The gateway's client to the VMs sends the vLLM key as the VMs read it."""

from __future__ import annotations

from yoyo_control.adapters.upstream_http import HttpUpstream


def test_a_key_read_with_its_trailing_newline_is_sent_without_it() -> None:
    """A Secret Manager version saved with a newline (what `echo KEY | gcloud secrets
    versions add` stores): vm/startup.sh and the worker strip it, so the gateway must too,
    or every request it forwards is refused (401)."""
    upstream = HttpUpstream("s3cret\n")
    assert upstream._headers["Authorization"] == "Bearer s3cret"
