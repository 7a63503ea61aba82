"""Settings, the HTTP section: the API's tokens and the server's limits, and the CLI's remote
API (``Settings`` inherits it)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from ecosign_orchestrator.service.http_limits import HttpLimits
from ecosign_orchestrator.service.tokens import ApiToken, parse_tokens


class HttpSettings(BaseModel):
    """The HTTP API: who may call it, and how long and how many connections it allows."""

    api_url: str | None = Field(default=None, description="CLI: talk to this API instead of the DB")
    api_token: SecretStr | None = Field(default=None, description="CLI: bearer token for api_url")
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="read-write API tokens (comma-separated in env)"
    )
    api_read_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="read-only API tokens (comma-separated in env)"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="a request's headers must arrive within this long, else 408 and close",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a request's body must arrive within this long after its headers",
    )
    http_send_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="a response the client reads nothing of for this long is dropped (a "
        "client that pipelines requests and never reads cannot hold a connection)",
    )
    http_max_connections: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="open connections at most (kept below half the file-descriptor limit); at "
        "the cap the server stops accepting and the kernel's backlog holds the rest",
    )
    http_max_connections_per_client: int = Field(
        default=256,
        ge=0,
        le=100_000,
        description="open connections at most from one client address (0: no limit; behind "
        "a reverse proxy every client shares its address: set 0 and let the proxy limit "
        "clients)",
    )

    @field_validator("api_tokens", "api_read_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("api_tokens", "api_read_tokens", mode="after")
    @classmethod
    def _named_tokens(cls, value: list[SecretStr], info: ValidationInfo) -> list[SecretStr]:
        entries = [v.get_secret_value() for v in value]
        parse_tokens(entries, read_only=info.field_name == "api_read_tokens")
        return value

    def tokens(self) -> list[ApiToken]:
        """The API's tokens with their names and scopes (``ECOSIGN_ORCH_API_TOKENS`` entries
        ``name:token[:scope]``, ``ECOSIGN_ORCH_API_READ_TOKENS`` read-only)."""
        write = parse_tokens([t.get_secret_value() for t in self.api_tokens])
        read = parse_tokens([t.get_secret_value() for t in self.api_read_tokens], read_only=True)
        return [*write, *read]

    def http_limits(self) -> HttpLimits:
        """Read deadlines and the connection cap of the HTTP server."""
        return HttpLimits(
            header_timeout=self.http_header_timeout_seconds,
            body_timeout=self.http_body_timeout_seconds,
            send_timeout=self.http_send_timeout_seconds,
            max_connections=self.http_max_connections,
            max_per_client=self.http_max_connections_per_client,
        )
