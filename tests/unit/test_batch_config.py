"""The ``batch`` configuration section and the Storage adapter it selects."""

from __future__ import annotations

from pathlib import Path

import pytest

from yoyo_control import bootstrap
from yoyo_control.adapters.cloud_storage import CloudStorage
from yoyo_control.adapters.local_storage import LocalStorage
from yoyo_control.config import DEFAULT_LOCAL, parse_config
from yoyo_control.errors import ConfigError


def test_batch_defaults_follow_openai_limits() -> None:
    batch = parse_config(DEFAULT_LOCAL).batch
    assert (batch.max_file_bytes, batch.max_lines) == (200 * 1024 * 1024, 50_000)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"shard_lines": 0}, "batch.shard_lines"),
        ({"bucket": 3}, "batch.bucket"),
        ({"buckett": "x"}, "unknown key"),
    ],
)
def test_batch_mistakes_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**DEFAULT_LOCAL, "batch": section})


def test_storage_is_a_directory_locally_and_the_bucket_on_gcp(tmp_path: Path) -> None:
    local = parse_config({**DEFAULT_LOCAL, "local": {"state_dir": str(tmp_path)}})
    assert isinstance(bootstrap.build_storage(local), LocalStorage)
    gcp = parse_config({**DEFAULT_LOCAL, "backend": "gcp", "batch": {"bucket": "b"}})
    storage = bootstrap.build_storage(gcp)
    assert isinstance(storage, CloudStorage) and storage.bucket_name == "b"
    with pytest.raises(ConfigError, match=r"batch\.bucket"):
        bootstrap.build_storage(parse_config({**DEFAULT_LOCAL, "backend": "gcp"}))
