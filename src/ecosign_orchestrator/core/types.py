"""Named aliases shared across the core."""

from __future__ import annotations

from typing import NewType, TypeAlias

JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
JSONDict: TypeAlias = dict[str, JSONValue]

#: A job id: a UUIDv7 string, so ids sort by creation time.
JobId = NewType("JobId", str)
#: A lease token: a fresh UUID per claim; every write by the lease holder must present it (fencing).
LeaseToken = NewType("LeaseToken", str)
