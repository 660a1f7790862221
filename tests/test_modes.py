"""Modes are StrEnums: the config builds them, the error messages list their values."""

from __future__ import annotations

import pytest
import yaml

from operations.assemble import parse_config
from router.errors import ConfigError
from router.modes import Deletes, OnError, Op, Unrouted
from router.sink import DELETE, UPSERT

ROUTE = {"source": "T", "sink": "s", "table": "t", "key": ["Id"], "columns": {"Id": {"type": "bigint"}}}


def config(**route: str) -> str:
    return yaml.safe_dump({"version": 1, "unrouted": "skip", "sinks": {"s": {"type": "postgres", "dsn": "x"}},
                           "routes": {"r": {**ROUTE, **route}}})


def test_the_config_holds_enums_not_strings() -> None:
    loaded = parse_config(config(deletes="soft", on_error="dead_letter"), environ={})
    route = loaded.routes["r"]
    assert (type(route.deletes), route.deletes) == (Deletes, Deletes.SOFT)
    assert (type(route.on_error), route.on_error) == (OnError, OnError.DEAD_LETTER)
    assert (type(loaded.unrouted), loaded.unrouted) == (Unrouted, Unrouted.SKIP)


def test_an_unknown_mode_lists_the_enum_values() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(deletes="purge"), environ={})
    assert "hard" in str(caught.value) and "soft" in str(caught.value) and "ignore" in str(caught.value)


def test_one_encoding_of_the_op() -> None:
    # the ops of a Change are the letters the sinks' batch documents and stages carry
    assert (UPSERT, DELETE) == (Op.UPSERT, Op.DELETE) == ("u", "d")
    assert Op.KEEP == "k"
