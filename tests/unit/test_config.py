"""Configuration parsing: valid documents load, mistakes name the offending key."""

from __future__ import annotations

import json

import pytest

from yoyo_control.config import DEFAULT_LOCAL, load_config, parse_config, parse_duration
from yoyo_control.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("1h30m", 5400),
        ("90s", 90),
        ("600", 600),
        (45, 45),
        (2.5, 2.5),
        ("2h", 7200),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "-5", "5x", None, True, [], "1d"])
def test_bad_durations_are_rejected_with_the_value(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(bad, "window")


def test_the_embedded_default_is_a_valid_local_config() -> None:
    config = load_config({})
    assert config.backend == "local" and "default" in config.pools
    assert config.pools["default"].instances == ("yoyo-default-0",)


def test_config_from_environment_json_and_backend_override() -> None:
    raw = {"pools": {"gpu": {"instances": ["a", "b"], "idle_timeout_s": "15m"}}}
    config = load_config({"YOYO_CONFIG": json.dumps(raw), "YOYO_BACKEND": "gcp"})
    assert config.backend == "gcp" and config.pools["gpu"].idle_timeout_s == 900
    assert config.pools["gpu"].max_instances == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pools": {}}, "pools: Dictionary should have at least 1 item"),
        ({"pools": {"gpu": {}}}, "pools.gpu.instances: Field required"),
        ({"pools": {"gpu": {"instances": ["a"], "idle_timout_s": 5}}}, "idle_timout_s"),
        (
            {"pools": {"GPU!": {"instances": ["a"]}}},
            r"pools.key 'GPU!': String should match pattern",
        ),
        ({"backend": "aws", "pools": DEFAULT_LOCAL["pools"]}, "config.backend"),
        ({"pools": {"gpu": {"instances": ["a"], "queue_threshold": 0}}}, "queue_threshold"),
    ],
)
def test_mistakes_name_the_offending_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_unparseable_environment_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="YOYO_CONFIG is not JSON"):
        load_config({"YOYO_CONFIG": "{nope"})


def test_every_pool_knows_the_longest_time_between_ticks() -> None:
    pools = {"gpu": {"zone": "z", "instances": ["vm-0"]}}
    deployed = parse_config({"backend": "gcp", "tick_cron": "*/2 * * * *", "pools": pools})
    assert deployed.pools["gpu"].tick_s == 120
    local = parse_config({"local": {"tick_interval_s": 0.5}, "pools": pools})
    assert local.pools["gpu"].tick_s == 0.5


def test_the_tick_period_is_not_a_pool_setting() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['tick_s'\]"):
        parse_config({"pools": {"gpu": {"zone": "z", "instances": ["vm-0"], "tick_s": 5}}})


def test_pools_name_their_model_and_the_gateway_has_defaults() -> None:
    pools = {"gpu": {"instances": ["a"], "model": "llama-3"}, "cpu": {"instances": ["b"]}}
    config = parse_config({"pools": pools, "gateway": {"hold_s": "5m", "max_held": 10}})
    assert config.model_pools() == {"llama-3": "gpu", "cpu": "cpu"}
    assert (config.gateway.hold_s, config.gateway.max_held) == (300, 10)
    assert parse_config({"pools": pools}).gateway.hold_s == 600


@pytest.mark.parametrize(
    ("gateway", "pools", "message"),
    [
        ({"hold": 5}, {"a": {"instances": ["x"]}}, r"gateway: unknown key"),
        ({"max_held": 0}, {"a": {"instances": ["x"]}}, "gateway.max_held"),
        ({"poll_s": 0}, {"a": {"instances": ["x"]}}, "poll_s"),
        (
            {},
            {"a": {"instances": ["x"], "model": "m"}, "b": {"instances": ["y"], "model": "m"}},
            "already served",
        ),
        ({}, {"a": {"instances": ["x"], "model": " "}}, "pools.a.model"),
    ],
)
def test_gateway_mistakes_name_the_key(
    gateway: dict[str, object], pools: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"pools": pools, "gateway": gateway})


def test_the_embedded_local_document_restates_no_default() -> None:
    """DEFAULT_LOCAL sets only what differs from the schema: a default lives in one place."""
    defaults = parse_config({"pools": {"default": {"instances": ["yoyo-default-0"]}}})
    local = parse_config(DEFAULT_LOCAL)
    for key, value in DEFAULT_LOCAL.items():
        if key == "pools":
            pool, policy = value["default"], local.pools["default"]
            base = defaults.pools["default"]
            for name in set(pool) - {"instances", "cycle"}:
                assert getattr(policy, name) != getattr(base, name), f"pools.default.{name}"
            for name in pool["cycle"]:
                cycle, base_cycle = local.cycles["default"], defaults.cycles["default"]
                assert getattr(cycle, name) != getattr(base_cycle, name), f"cycle.{name}"
        elif isinstance(value, dict):
            for name in value:
                section, base_section = getattr(local, key), getattr(defaults, key)
                assert getattr(section, name) != getattr(base_section, name), f"{key}.{name}"
        else:
            assert getattr(local, key) != getattr(defaults, key), key


@pytest.mark.parametrize("path", ["", "metrics", "/metrics?x=1", "/me trics", "//host/metrics"])
def test_a_model_servers_metrics_path_is_a_path_on_that_server(path: str) -> None:
    # local/vm.py appends it to http://127.0.0.1:PORT: "metrics" made the host
    # "127.0.0.1:PORTmetrics" and "//host/metrics" another host (the agent never read a
    # load: the VM never looked ready); "" was read as /metrics, not as "no metrics".
    with pytest.raises(ConfigError, match=r"local\.model_server\.metrics_path"):
        parse_config({**DEFAULT_LOCAL, "local": {"model_server": {"metrics_path": path}}})


@pytest.mark.parametrize("path", ["/metrics", "/prom", "/v1/metrics"])
def test_a_model_servers_metrics_path_may_be_any_absolute_path(path: str) -> None:
    config = parse_config({**DEFAULT_LOCAL, "local": {"model_server": {"metrics_path": path}}})
    assert config.local.model_server.metrics_path == path
