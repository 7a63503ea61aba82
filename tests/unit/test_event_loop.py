"""The event loop commands run on: uvloop by default (a dependency here), asyncio's on request."""

from __future__ import annotations

import asyncio
import sys

import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.service import event_loop
from ecosign_orchestrator.service.cli import common


async def running_loop() -> str:
    return event_loop.name(asyncio.get_running_loop())


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_commands_run_on_uvloop_unless_asked_for_asyncio() -> None:
    assert event_loop.run(running_loop) == "uvloop"
    assert event_loop.run(running_loop, "uvloop") == "uvloop"
    assert event_loop.run(running_loop, "asyncio") == "asyncio"


def test_the_cli_runs_its_coroutines_on_the_configured_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ECOSIGN_ORCH_EVENT_LOOP", "asyncio")
    monkeypatch.setattr(common, "state", common.State())
    assert common.run(running_loop) == "asyncio"
    monkeypatch.setenv("ECOSIGN_ORCH_EVENT_LOOP", "auto")
    monkeypatch.setattr(common, "state", common.State())
    assert common.run(running_loop) == ("asyncio" if sys.platform == "win32" else "uvloop")


def test_asking_for_uvloop_where_it_is_missing_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as on a platform without it
    with pytest.raises(errors.ConfigurationError, match="EVENT_LOOP=uvloop"):
        event_loop.run(running_loop, "uvloop")
    assert event_loop.run(running_loop) == "asyncio"  # auto falls back to asyncio's loop
