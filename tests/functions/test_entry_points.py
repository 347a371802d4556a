"""functions/main.py defines exactly the deployed entry points, and builds nothing on import."""

from __future__ import annotations

import inspect
import sys

from functions_framework import _function_registry

from yoyo_control import bootstrap, names

EVENT_ENTRIES = {*names.ENTRY_POINTS.values(), names.ENTRY_KILL_SWITCH_WRITTEN}


def test_every_entry_point_exists_with_its_signature_type(app, monkeypatch):
    # (another test of the session may have built them: start from none)
    for built in ("_service", "_gateway", "_batch_controller"):
        monkeypatch.setattr(bootstrap, built, None)
    for entry in sorted(EVENT_ENTRIES):
        app(entry, "cloudevent")
        assert _function_registry.REGISTRY_MAP[entry] == "cloudevent", entry
    for entry in (names.ENTRY_STATUS_PAGE, names.ENTRY_GATEWAY):
        app(entry, "http")
        assert _function_registry.REGISTRY_MAP[entry] == "http"
    # the gateway is async: functions-framework serves it on its ASGI stack
    assert names.ENTRY_GATEWAY in _function_registry.ASGI_FUNCTIONS
    # loading the source built no adapter
    assert bootstrap._service is None and bootstrap._gateway is None
    assert bootstrap._batch_controller is None


def test_main_defines_no_other_public_function(app):
    app(names.ENTRY_STATUS_PAGE, "http")
    main = sys.modules["main"]
    public = {
        name
        for name, value in vars(main).items()
        if inspect.isfunction(value) and value.__module__ == "main" and not name.startswith("_")
    }
    assert public == {
        *EVENT_ENTRIES,
        names.ENTRY_STATUS_PAGE,
        names.ENTRY_GATEWAY,
        names.ENTRY_BATCH,
    }
