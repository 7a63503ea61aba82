from __future__ import annotations

import json

import pytest

from ecosign_orchestrator.core import jsonfast


def test_dumps_writes_what_the_standard_library_reads_back() -> None:
    value = {"a": [1, 2.5, None, True], "b": {"c": "ñ"}, "big": 2**70, 3: "int key"}
    assert json.loads(jsonfast.dumps(value)) == {
        **{k: v for k, v in value.items() if k != 3},
        "3": "int key",
    }


def test_integers_beyond_64_bits_survive_the_round_trip() -> None:
    assert jsonfast.loads(jsonfast.dumps({"n": 2**70})) == {"n": 2**70}


def test_loads_reads_bytes_and_refuses_what_is_not_json() -> None:
    assert jsonfast.loads(b'{"x": [1, "y"]}') == {"x": [1, "y"]}
    with pytest.raises(ValueError):
        jsonfast.loads(b"{not json")


def test_dumps_still_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError):
        jsonfast.dumps({"x": object()})
