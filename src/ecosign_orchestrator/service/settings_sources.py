"""Settings helpers: the TOML file source, secrets inside URLs (found and masked), schedules."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, TomlConfigSettingsSource

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.schedules import Schedule


def toml_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    """The TOML file ``ECOSIGN_ORCH_CONFIG`` names: missing or malformed is an error, not a file
    silently ignored."""
    if not path.is_file():
        raise errors.ConfigurationError(
            f"ECOSIGN_ORCH_CONFIG names {path}, which is not a file: fix the path or unset it"
        )
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigurationError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise errors.ConfigurationError(f"{path}: cannot read it: {exc.strerror}") from None


#: Query parameters whose values are credentials (libpq's ``?password=``, tokens, keys).
SECRET_QUERY_KEYS = frozenset(
    {"password", "pass", "pwd", "sslpassword", "token", "apikey", "api_key", "key", "secret"}
)


def _url_parts(url: str) -> tuple[str, str, str | None, str] | None:
    """``(scheme, user, password, rest)`` of ``scheme://user[:password]@host...``, else None.

    The credentials end at the last ``@`` before the path: libpq reads a raw ``?`` or ``@``
    inside a password as part of it, so everything it would read as the password is masked."""
    scheme, sep, rest = url.partition("://")
    end = rest.find("/") if "/" in rest else len(rest)
    authority, tail = rest[:end], rest[end:]
    if not sep or "@" not in authority:
        return None
    credentials, _, host = authority.rpartition("@")
    user, colon, password = credentials.partition(":")
    return scheme, user, password if colon else None, host + tail


def _query_secrets(url: str) -> list[tuple[str, str]]:
    query = url.partition("?")[2].partition("#")[0]
    return [
        (key, value)
        for key, value in parse_qsl(query, keep_blank_values=True)
        if key.lower() in SECRET_QUERY_KEYS
    ]


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries: the password of ``user:password@``, and the values of
    secret query parameters (registered for log redaction)."""
    parts = _url_parts(url)
    found = [parts[2]] if parts is not None and parts[2] else []
    return found + [value for _, value in _query_secrets(url) if value]


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db?password=x`` -> ``postgresql://user:***@host/db?password=***``."""
    masked = url
    parts = _url_parts(url)
    if parts is not None and parts[2] is not None:
        scheme, user, _, rest = parts
        masked = f"{scheme}://{user}:***@{rest}"
    base, question, query = masked.partition("?")
    if not question or not _query_secrets(masked):
        return masked
    pairs = [
        f"{key}={'***' if key.lower() in SECRET_QUERY_KEYS else quote(value, safe='')}"
        for key, value in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{base}?{'&'.join(pairs)}"


_SCHEDULE_FIELDS = {"kind", "cron", "every_seconds", "payload", "queue"}


def to_schedule(name: str, spec: Any) -> Schedule:
    """One configured schedule (ValueError naming what is wrong)."""
    if not isinstance(spec, dict):
        raise ValueError(f"schedule {name}: must be an object")
    unknown = set(spec) - _SCHEDULE_FIELDS
    if unknown:
        raise ValueError(f"schedule {name}: unknown fields {', '.join(sorted(unknown))}")
    if not isinstance(spec.get("kind"), str):
        raise ValueError(f"schedule {name}: kind is required")
    try:
        return Schedule(
            name=name,
            kind=spec["kind"],
            payload=spec.get("payload") or {},
            cron=spec.get("cron"),
            every_seconds=spec.get("every_seconds"),
            queue=spec.get("queue", "default"),
        )
    except (errors.InvalidJob, TypeError) as exc:
        raise ValueError(str(exc)) from None
