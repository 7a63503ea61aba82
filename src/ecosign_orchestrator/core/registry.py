"""Which processor handles which job kind, with its retry policy and timeout."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.processor import Processor
from ecosign_orchestrator.core.retry import RetryPolicy
from ecosign_orchestrator.core.types import JSONDict

if TYPE_CHECKING:  # a schedule names a kind; the registry only keeps it
    from ecosign_orchestrator.core.schedules import Schedule

#: Validates (and may normalise) a payload at enqueue time; raises ``InvalidJob`` naming the field.
PayloadValidator = Callable[[JSONDict], JSONDict]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobKind:
    """A registered kind of job."""

    name: str
    processor: Processor
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    #: Seconds one run may take before it is cancelled and counted as a transient failure.
    timeout: float | None = None
    validate: PayloadValidator | None = None


class Registry:
    """Kinds by name.

    >>> registry = Registry()
    >>> @registry.processor("email.send", retry=RetryPolicy(max_attempts=3))
    ... async def send(ctx): ...
    """

    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}
        self._schedules: dict[str, Schedule] = {}

    def register(
        self,
        name: str,
        processor: Processor,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        validate: PayloadValidator | None = None,
    ) -> JobKind:
        """Register ``processor`` for jobs of kind ``name``."""
        if not name or name != name.strip():
            raise errors.ConfigurationError(f"invalid job kind name {name!r}")
        if name in self._kinds:
            raise errors.ConfigurationError(f"job kind {name!r} is already registered")
        if timeout is not None and timeout <= 0:
            raise errors.ConfigurationError("timeout must be positive")
        kind = JobKind(
            name=name,
            processor=processor,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            validate=validate,
        )
        self._kinds[name] = kind
        return kind

    def processor(
        self,
        name: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        validate: PayloadValidator | None = None,
    ) -> Callable[[Processor], Processor]:
        """Decorator form of :meth:`register`."""

        def decorate(fn: Processor) -> Processor:
            self.register(name, fn, retry=retry, timeout=timeout, validate=validate)
            return fn

        return decorate

    def include(self, other: Registry) -> None:
        """Add every kind of ``other``."""
        for kind in other:
            if kind.name in self._kinds:
                raise errors.ConfigurationError(f"job kind {kind.name!r} is already registered")
            self._kinds[kind.name] = kind
        for schedule in other.schedules():
            self.schedule(schedule)

    def schedule(self, schedule: Schedule) -> Schedule:
        """Enqueue ``schedule.kind`` on its cron expression or period (see ``schedules``); every
        worker of this registry checks it, the store keeps one job per tick."""
        if schedule.name in self._schedules:
            raise errors.ConfigurationError(f"schedule {schedule.name!r} is already registered")
        self._schedules[schedule.name] = schedule
        return schedule

    def schedules(self) -> list[Schedule]:
        """Registered schedules, by name."""
        return [self._schedules[name] for name in sorted(self._schedules)]

    def get(self, name: str) -> JobKind:
        """The kind ``name``, or :class:`UnknownJobKind`."""
        try:
            return self._kinds[name]
        except KeyError:
            raise errors.UnknownJobKind(name, sorted(self._kinds)) from None

    def names(self) -> list[str]:
        """Registered kind names, sorted."""
        return sorted(self._kinds)

    def __iter__(self) -> Iterator[JobKind]:
        return iter(self._kinds.values())

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __len__(self) -> int:
        return len(self._kinds)
