"""The event loop every command runs on: uvloop where it is installed, else the standard
library's.

Why uvloop: a worker's own cost per job is mostly event-loop work, not ours: waking tasks,
resolving futures, and registering the database socket for each round trip and removing it
after. uvloop (libuv underneath; uvicorn's default loop, and PgQueuer's) does that work in C.
It is a dependency on Linux and macOS; ``EVENT_LOOP=asyncio`` keeps the standard library's loop
(a debugging aid, or a platform without uvloop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from ecosign_orchestrator.core import errors

T = TypeVar("T")

#: ``auto``: uvloop if installed, else asyncio's own loop.
Choice = Literal["auto", "uvloop", "asyncio"]


def run(main: Callable[[], Coroutine[Any, Any, T]], choice: Choice = "auto") -> T:
    """Run ``main()`` to completion on a new loop of the chosen kind, as ``asyncio.run`` does
    (the coroutine is made once the loop is known: a refused choice leaves none unawaited)."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main())


def loop_factory(choice: Choice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the chosen loop (None: asyncio's default)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise errors.ConfigurationError(
                "EVENT_LOOP=uvloop: uvloop is not installed (it is on Linux and macOS)"
            ) from None
        return None
    return uvloop.new_event_loop


def name(loop: asyncio.AbstractEventLoop) -> str:
    """The running loop's kind, as the settings spell it."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
