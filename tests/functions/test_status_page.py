"""The status_page HTTP entry point: renders through yoyo_control.statuspage, or says why not."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest

from yoyo_control import names


@pytest.fixture
def page(app, monkeypatch):
    client = app(names.ENTRY_STATUS_PAGE, "http")
    return client, sys.modules["main"]


def test_answers_503_with_a_clear_message_when_the_module_is_missing(world, page, monkeypatch):
    client, main = page
    monkeypatch.setattr(main, "STATUS_PAGE_MODULE", "yoyo_control.no_such_status_page")
    response = client.get("/")
    assert response.status_code == 503
    assert b"yoyo_control.no_such_status_page is not installed" in response.data


def test_renders_the_page_from_the_service(world, page, monkeypatch):
    client, main = page
    seen = []

    def render_html(service):
        seen.append(service)
        return "<h1>pools: default</h1>"

    module = types.ModuleType("yoyo_status_page_stub")
    module.render_html = render_html
    module.__spec__ = importlib.machinery.ModuleSpec("yoyo_status_page_stub", None)
    monkeypatch.setitem(sys.modules, "yoyo_status_page_stub", module)
    monkeypatch.setattr(main, "STATUS_PAGE_MODULE", "yoyo_status_page_stub")
    response = client.get("/")
    assert response.status_code == 200 and response.data == b"<h1>pools: default</h1>"
    assert response.headers["Content-Type"].startswith("text/html")
    assert seen == [world.service]
