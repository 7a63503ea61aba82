"""The asyncpg side of the PostgreSQL repository, without a server: placeholders, URLs and
messages (the statements themselves run against real servers in tests/integration and
tests/contract)."""

from __future__ import annotations

import pytest

from ecosign_orchestrator.core.repository import sql
from ecosign_orchestrator.core.repository.postgres_hot import (
    HOT_STATEMENTS,
    asyncpg_url,
    positional,
    redacted,
)


def test_named_placeholders_become_numbered_ones_in_order_of_first_use() -> None:
    text, names = positional("SELECT %(b)s, %(a)s::int, %(b)s || %(c)s")
    assert text == "SELECT $1, $2::int, $1 || $3"
    assert names == ("b", "a", "c")


def test_a_literal_percent_is_refused_rather_than_mistranslated() -> None:
    with pytest.raises(ValueError, match="literal %"):
        positional("SELECT 'a%%' || %(x)s")


def test_every_hot_statement_translates_with_no_placeholder_left() -> None:
    queries = sql.queries("postgres")
    assert set(queries) >= HOT_STATEMENTS
    for name in HOT_STATEMENTS:
        text, names = positional(queries[name])
        assert "%(" not in text and names, name
        assert f"${len(names)}" in text and f"${len(names) + 1}" not in text, name


def test_libpq_options_that_tune_only_the_client_are_left_out_for_asyncpg() -> None:
    url = (
        "postgresql://u:pw@db.example:5432/app?connect_timeout=5&sslmode=require"
        "&keepalives=1&keepalives_idle=30&application_name=orch&gssencmode=disable"
    )
    assert asyncpg_url(url) == (
        "postgresql://u:pw@db.example:5432/app?sslmode=require&application_name=orch"
    )
    # What asyncpg cannot honour stays, so that it refuses the URL (everything then runs on
    # psycopg) rather than connect with less than was asked.
    strict = "postgresql://u@h/app?gssencmode=require&channel_binding=require"
    assert asyncpg_url(strict) == strict
    plain = "postgresql://u@h:5432/app"
    assert asyncpg_url(plain) is plain


def test_a_message_quoting_the_url_loses_its_password() -> None:
    url = "postgresql://orch:s3cret-pw@h:5432/app"
    assert redacted(f"invalid DSN {url}", url) == "invalid DSN postgresql://orch:***@h:5432/app"
    assert redacted("no password here", "postgresql://u@h/app") == "no password here"
