"""Log configuration: structlog over stdlib logging, JSON in production, console on a TTY.

Libraries log with ``logging.getLogger(__name__)`` and ``extra={"action": ...}``; only this module
configures handlers. A redaction processor masks secrets wherever they appear.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from ecosign_orchestrator.core import observe

_SENSITIVE_KEYS = re.compile(
    r"(authorization|apikey|api_key|token|secret|password|service_key)", re.I
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_secrets: set[str] = set()

_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def register_secrets(values: Iterable[str | None]) -> None:
    """Values that must never appear in a log line (service keys, API tokens)."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def redact_text(text: str) -> str:
    """Mask bearer tokens, URL passwords and registered secrets in ``text``."""
    text = _BEARER.sub("Bearer ***", text)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: "***" if isinstance(k, str) and _SENSITIVE_KEYS.search(k) else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secrets in every field."""
    return {
        k: "***" if _SENSITIVE_KEYS.search(k) and k != "event" else _redact(v)
        for k, v in event_dict.items()
    }


def _extra_fields(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Lift the ``extra=`` fields of stdlib records into the event."""
    record: logging.LogRecord | None = event_dict.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_") and key not in event_dict:
                event_dict[key] = value
    return event_dict


class ContextFilter(logging.Filter):
    """Copy the task's bound fields (job id, document id, step, attempt) onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in observe.log_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Route all logging through structlog: JSON lines, or a readable console on a TTY."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _extra_fields],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
