"""The HTTP API in process over real HTTP: submit, idempotency, refusals, listing, auth, metrics."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ecosign_orchestrator.service.api import create_app
from tests.support.api import serve_in_thread
from tests.support.flows import SandboxAdmin, flow_settings
from tests.support.procs import cli, cli_env

WRITE = "test-write-token-4d8f2a"
DOC_ID = b'{"document_entity_id": "5e3c2b8a-0f1d-4e7a-9b6c-1d2e3f4a5b6c", '
VALID = DOC_ID + b'"actions": {"protect": true}'
READ = "test-read-token-91c3b7"


@pytest.fixture
async def api(sandbox_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    settings = flow_settings(
        sandbox_url,
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"),
        api_tokens=[SecretStr(WRITE)],
        api_read_tokens=[SecretStr(READ)],
        ffmpeg_input_roots=[tmp_path],
        ffmpeg_output_root=tmp_path,
    )
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    with serve_in_thread(create_app(settings)) as url:
        async with (
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {WRITE}"}, timeout=30
            ) as client,
            httpx.AsyncClient(base_url=url, timeout=30) as anonymous,
        ):
            yield {"client": client, "anon": anonymous, "admin": admin, "url": url, "dir": tmp_path}
    await admin.aclose()


def intent(doc: str, **forensic: bool) -> dict[str, Any]:
    return {"document_entity_id": doc, "actions": {"protect": True}, "forensic": forensic}


async def wait_terminal(client: httpx.AsyncClient, job_id: str, after: int = 0) -> dict[str, Any]:
    params = {"job_id": job_id, "after": after}
    async with client.stream("GET", "/v1/events/stream", params=params) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event: job_completed") or line.startswith("event: job_failed"):
                break
    return (await client.get(f"/v1/jobs/{job_id}")).json()  # type: ignore[no-any-return]


async def stream_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    """Every event of a job from its SSE stream, until the stream ends after the terminal one."""
    events = []
    async with client.stream("GET", "/v1/events/stream", params={"job_id": job_id}) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    return events


def _assert_step_events_follow_the_plan(
    events: list[dict[str, Any]], final: dict[str, Any]
) -> None:
    """Step events sit between the first start and the end; each step done is started first,
    in the plan's order; a step not asked for is skipped."""
    types = [e["type"] for e in events]
    steps = [(e["type"], e["data"]["step"]) for e in events if e["type"].startswith("step_")]
    first_start, end = types.index("job_started"), types.index("job_completed")
    assert all(first_start < i < end for i, t in enumerate(types) if t.startswith("step_"))
    done = [s["name"] for s in final["steps"] if s["status"] == "succeeded"]
    started = list(dict.fromkeys(name for kind, name in steps if kind == "step_started"))
    assert started == done
    for name in done:
        kinds = [kind for kind, step in steps if step == name]
        assert kinds[0] == "step_started" and kinds[-1] == "step_succeeded", (name, kinds)
    assert ("step_waiting", "anchor_polygon") in steps
    assert ("step_skipped", "anchor_bitcoin") in steps


async def two_failed_one_completed(api: dict[str, Any]) -> list[str]:
    """Three flows, oldest first: two end failed at build_artifact with a 400, one completes."""
    client: httpx.AsyncClient = api["client"]
    docs = [await api["admin"].create_document() for _ in range(3)]
    await api["admin"].set_faults(
        {"build-artifact": {"rate": 1.0, "statuses": [400], "documents": docs[:2]}}
    )
    ids = [(await client.post("/v1/document-jobs", json=intent(d))).json()["id"] for d in docs]
    finals = [await wait_terminal(client, i) for i in ids]
    assert [f["status"] for f in finals] == ["failed", "failed", "completed"]
    return ids


async def count_jobs(client: httpx.AsyncClient) -> int:
    return len((await client.get("/v1/jobs", params={"limit": 500})).json()["jobs"])


async def test_submit_follow_and_inspect_a_flow(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    created = await client.post("/v1/document-jobs", json=intent(doc, tsa=True, polygon=True))
    assert created.status_code == 201, created.text
    job = created.json()
    assert created.headers["location"] == f"/v1/jobs/{job['id']}"
    streamed = await stream_events(client, job["id"])
    final = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert final["status"] == "completed"
    _assert_step_events_follow_the_plan(streamed, final)
    assert [s["name"] for s in final["steps"]] == [
        "encrypt_source",
        "create_witness",
        "append_tsa",
        "anchor_polygon",
        "anchor_bitcoin",
        "build_artifact",
        "notify_artifact_ready",
    ]
    assert final["lifecycle"] == {
        "terminal_state": "completed",
        "implied_lifecycle_status": "anchored",
        "written_back": False,
    }
    events = (await client.get(f"/v1/jobs/{job['id']}/events")).json()
    assert events[0]["type"] == "job_queued" and events[-1]["type"] == "job_completed"
    assert [(e["id"], e["type"]) for e in events] == [(e["id"], e["type"]) for e in streamed]
    after = (
        await client.get(f"/v1/jobs/{job['id']}/events", params={"after": events[-2]["id"]})
    ).json()
    assert [e["id"] for e in after] == [events[-1]["id"]]


async def test_idempotency_key_and_intent_dedupe(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    headers = {"Idempotency-Key": "cta-click-1"}
    first = await client.post("/v1/document-jobs", json=intent(doc), headers=headers)
    again = await client.post("/v1/document-jobs", json=intent(doc), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    conflict = await client.post("/v1/document-jobs", json=intent(doc, tsa=True), headers=headers)
    assert conflict.status_code == 409 and "cta-click-1" in conflict.json()["detail"]
    same_intent = await client.post("/v1/document-jobs", json=intent(doc.upper()))
    assert same_intent.status_code == 200 and same_intent.json()["id"] == first.json()["id"]
    assert await count_jobs(client) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "field"),
    [
        (
            b'{"document_entity_id": "x", "actions": {"protect": true}}',
            {},
            422,
            "document_entity_id",
        ),
        (
            b'{"document_entity_id": "5e3c2b8a-0f1d-4e7a-9b6c-1d2e3f4a5b6c", "actions": {}}',
            {},
            422,
            "actions",
        ),
        (
            VALID + b', "x": 1}',
            {},
            422,
            "x",
        ),
        (
            DOC_ID + b'"actions": {"protect": true, "protect": false}}',
            {},
            422,
            "actions.protect",
        ),
        (
            VALID + b', "metadata": {"a": NaN}}',
            {},
            422,
            "body",
        ),
        (
            VALID + b', "metadata": {"a": "\\u0000"}}',
            {},
            422,
            "metadata",
        ),
        (b"{not json", {}, 422, "body"),
        (b"", {}, 422, "body"),
        (b'{"document_entity_id": "x"}', {"Content-Type": "text/plain"}, 415, None),
        (b'{"metadata": "' + b"a" * (1024 * 1024) + b'"}', {}, 413, None),
    ],
)
async def test_bad_bodies_get_a_clear_4xx_and_write_nothing(
    api: dict[str, Any], body: bytes, headers: dict[str, str], status: int, field: str | None
) -> None:
    client: httpx.AsyncClient = api["client"]
    response = await client.post(
        "/v1/document-jobs", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["detail"]
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    assert await count_jobs(client) == 0


async def test_deeply_nested_metadata_is_refused(api: dict[str, Any]) -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"n": nested}
    body = {**intent("5e3c2b8a-0f1d-4e7a-9b6c-1d2e3f4a5b6c"), "metadata": nested}
    response = await api["client"].post(
        "/v1/document-jobs", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "32 levels" in response.text


async def test_list_filters_and_cursor_pagination(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    docs = [await api["admin"].create_document() for _ in range(3)]
    ids = [(await client.post("/v1/document-jobs", json=intent(d))).json()["id"] for d in docs]
    page1 = (await client.get("/v1/jobs", params={"limit": 2})).json()
    page2 = (
        await client.get("/v1/jobs", params={"limit": 2, "cursor": page1["next_cursor"]})
    ).json()
    assert [j["id"] for j in page1["jobs"] + page2["jobs"]] == list(reversed(ids))
    assert page2["next_cursor"] is None
    by_doc = (await client.get("/v1/jobs", params={"document_id": docs[1]})).json()["jobs"]
    assert [j["id"] for j in by_doc] == [ids[1]]
    by_kind = (await client.get("/v1/jobs", params=[("kind", "ffmpeg.transcode")])).json()["jobs"]
    assert by_kind == []
    bad = await client.get("/v1/jobs", params={"status": "sleeping"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.status.0"


async def test_retry_runs_a_failed_flow_again_from_its_state_and_cancel_works(
    api: dict[str, Any],
) -> None:
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    await api["admin"].set_faults(
        {
            "build-artifact": {
                "rate": 1.0,
                "statuses": [400],
                "body": {"error": "missing_witness_pdf"},
            }
        }
    )
    job = (await client.post("/v1/document-jobs", json=intent(doc, tsa=True))).json()
    failed = await wait_terminal(client, job["id"])
    assert failed["status"] == "failed" and failed["last_error"]["details"]["status"] == 400
    await api["admin"].set_faults({"build-artifact": None})
    seen = (await client.get(f"/v1/jobs/{job['id']}/events")).json()[-1]["id"]
    retried = await client.post(f"/v1/jobs/{job['id']}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    final = await wait_terminal(client, job["id"], after=seen)
    assert final["status"] == "completed"
    calls = [c["function"] for c in (await api["admin"].ledger(doc))["calls"]]
    assert (
        calls.count("run-tsa") == 1 and calls.count("store-encrypted-custody") == 1
    )  # re-planned from state
    assert (await client.post(f"/v1/jobs/{job['id']}/retry")).status_code == 409
    assert (await client.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 409
    assert (await client.get("/v1/jobs/nope")).status_code == 404


async def test_health_readiness_and_metrics(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    anon: httpx.AsyncClient = api["anon"]
    assert (await anon.get("/healthz")).json() == {"status": "ok", "detail": ""}
    assert (await anon.get("/readyz")).status_code == 200
    doc = await api["admin"].create_document()
    job = (await client.post("/v1/document-jobs", json=intent(doc))).json()
    await wait_terminal(client, job["id"])
    text = (await client.get("/metrics", headers={"Authorization": f"Bearer {READ}"})).text
    assert 'ecosign_orch_jobs{kind="ecosign.document",status="completed"} 1.0' in text
    assert 'ecosign_orch_claims_total{kind="ecosign.document"}' in text
    step = 'kind="ecosign.document",status="succeeded",step="build_artifact"'
    assert f"ecosign_orch_step_duration_seconds_count{{{step}}} 1.0" in text
    assert 'ecosign_orch_edge_calls_total{function="build-artifact",status_class="2xx"} 1.0' in text
    # The flow is done: none of its requests to EcoSign is open or waiting.
    assert 'ecosign_orch_edge_exchanges{state="open"} 0.0' in text
    assert 'ecosign_orch_edge_exchanges{state="waiting"} 0.0' in text
    assert "ecosign_orch_queue_depth" in text or "ecosign_orch_lease_recoveries_total" in text


async def test_every_route_but_health_requires_a_token(api: dict[str, Any]) -> None:
    anon: httpx.AsyncClient = api["anon"]
    schema = (await anon.get("/openapi.json")).json()
    checked = 0
    for path, operations in schema["paths"].items():
        for method in operations:
            url = path.replace("{job_id}", "01a218d2-07fb-7000-b1d5-bfc10e1582b9")
            if path in ("/healthz", "/readyz"):
                assert (await anon.request(method, url)).status_code == 200
                continue
            missing = await anon.request(method, url)
            wrong = await anon.request(method, url, headers={"Authorization": "Bearer not-a-token"})
            assert missing.status_code == 401 and wrong.status_code == 401, (method, path)
            assert missing.headers.get("www-authenticate") == "Bearer"
            auth = {"Authorization": f"Bearer {READ}"}
            async with anon.stream(method, url, headers=auth, json={}) as read:
                status = read.status_code  # a stream is closed without reading it
            # a ticket and a plan only read
            if method == "post" and path not in ("/v1/stream-tickets", "/v1/document-jobs:plan"):
                assert status == 403, (method, path)
            else:
                assert status not in (401, 403), (method, path)
            checked += 1
    assert checked >= 9


async def test_ffmpeg_jobs_are_validated_at_submission(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    missing = await client.post(
        "/v1/ffmpeg-jobs",
        json={"input": str(api["dir"] / "nope.mp4"), "output": str(api["dir"] / "o.mp4")},
    )
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "input"
    hostile = await client.post(
        "/v1/ffmpeg-jobs", json={"input": "concat:a|b", "output": str(api["dir"] / "o.mp4")}
    )
    assert hostile.status_code == 422 and "protocol" in hostile.text
    unknown = await client.post(
        "/v1/ffmpeg-jobs", json={"input": "a", "output": "b", "rm_rf": True}
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "rm_rf"


def test_serve_refuses_a_public_interface_without_tokens(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/jobs.db")
    result = cli("serve", "--host", "0.0.0.0", env=env)
    assert result.returncode == 2 and "refusing to bind 0.0.0.0" in " ".join(result.stderr.split())


async def test_the_openapi_page_loads_its_assets_from_the_package_not_a_cdn(
    api: dict[str, Any],
) -> None:
    anon: httpx.AsyncClient = api["anon"]
    page = await anon.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert "cdn" not in page.text.lower()
    for source in sources:
        asset = await anon.get(source)
        assert asset.status_code == 200 and len(asset.content) > 1000, source


async def test_a_job_is_found_by_a_unique_prefix_or_suffix_of_its_id(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    job = (await client.post("/v1/document-jobs", json=intent(doc))).json()
    for short in (job["id"][-12:], job["id"][:20], job["id"][-8:].upper()):
        found = await client.get(f"/v1/jobs/{short}")
        assert found.status_code == 200 and found.json()["id"] == job["id"], short
    assert (await client.get(f"/v1/jobs/{job['id'][-8:]}/events")).status_code == 200
    # Too short to look up: the answer says how many characters to give, naming the field.
    short = await client.get(f"/v1/jobs/{job['id'][-7:]}")
    assert short.status_code == 422, short.text
    [error] = short.json()["errors"]
    assert error["field"] == "job_id" and "give 8 or more" in error["reason"]
    assert (await client.get("/v1/jobs/not-a-job-id")).status_code == 404


async def test_event_stream_edges_answer_clearly(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    unknown = await client.get("/v1/events/stream", params={"job_id": "0" * 12})
    assert unknown.status_code == 404
    for bad in ("abc", "9" * 32, "-1"):  # not an id, out of range, negative
        answer = await client.get("/v1/events/stream", headers={"Last-Event-ID": bad})
        assert answer.status_code == 400 and "Last-Event-ID" in answer.json()["detail"], bad
    doc = await api["admin"].create_document()
    job = (await client.post("/v1/document-jobs", json=intent(doc))).json()
    types = []
    async with client.stream("GET", "/v1/events/stream", params={"job_id": job["id"]}) as stream:
        async for line in stream.aiter_lines():  # ends by itself after the terminal event
            if line.startswith("event: "):
                types.append(line.removeprefix("event: "))
    assert types[0] == "job_queued" and types[-1] == "job_completed"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"document_id": "not-a-uuid"}, "document_id"),
        ({"document_id": "\u0661" * 8 + "-0f1d-4e7a-9b6c-1d2e3f4a5b6c"}, "document_id"),
    ],
)
async def test_list_filters_refuse_garbage_naming_the_field(
    api: dict[str, Any], params: dict[str, str], field: str
) -> None:
    answer = await api["client"].get("/v1/jobs", params=params)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == field


async def test_the_document_filter_is_normalised_like_submissions(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    await client.post("/v1/document-jobs", json=intent(doc))
    upper = await client.get("/v1/jobs", params={"document_id": doc.upper()})
    assert upper.status_code == 200 and len(upper.json()["jobs"]) == 1


@pytest.mark.parametrize(
    ("step_inputs", "field"),
    [
        (
            {"append_tsa": {"witness_hash": "ab" * 32}},
            "metadata.step_inputs.append_tsa.witness_hash",
        ),
        ({"build_artifact": {"document_entity_id": "x"}}, "metadata.step_inputs.build_artifact"),
        ({"encrypt_source": {"purpose": "witness"}}, "metadata.step_inputs.encrypt_source.purpose"),
        ({"no_such_step": {}}, "metadata.step_inputs.no_such_step"),
    ],
)
async def test_callers_cannot_choose_what_a_step_acts_on(
    api: dict[str, Any], step_inputs: dict[str, Any], field: str
) -> None:
    client: httpx.AsyncClient = api["client"]
    body = {
        **intent("5e3c2b8a-0f1d-4e7a-9b6c-1d2e3f4a5b6c"),
        "metadata": {"step_inputs": step_inputs},
    }
    answer = await client.post("/v1/document-jobs", json=body)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"].startswith(field)
    assert await count_jobs(client) == 0


async def test_a_step_input_the_table_allows_is_accepted(api: dict[str, Any]) -> None:
    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    inputs = {"encrypt_source": {"encrypted_data": "Y2lwaGVydGV4dA=="}}
    body = {**intent(doc), "metadata": {"step_inputs": inputs}}
    created = await client.post("/v1/document-jobs", json=body)
    assert created.status_code == 201, created.text
    assert (await wait_terminal(client, created.json()["id"]))["status"] == "completed"


def _post_with_urllib(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/v1/document-jobs",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {WRITE}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_refused_bodies_are_named_and_an_ordinary_client_reads_the_413(
    api: dict[str, Any],
) -> None:
    big = b'{"pad": "' + b"x" * (12 * 1024 * 1024) + b'"}'
    status, body = await asyncio.to_thread(_post_with_urllib, api["url"], big, "application/json")
    assert status == 413  # read by urllib, not a connection reset mid-upload
    [error] = body["errors"]
    assert error["field"] == "body" and f"{len(big)} bytes" in error["reason"]
    assert "ECOSIGN_ORCH_MAX_BODY_BYTES" in error["reason"]
    status, body = await asyncio.to_thread(_post_with_urllib, api["url"], VALID + b"}", "text/csv")
    assert status == 415 and body["errors"][0]["field"] == "Content-Type"
    assert "text/csv" in body["errors"][0]["reason"]


async def test_the_call_log_shows_each_attempt_and_what_the_function_answered(
    api: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from tests.support.flows import SANDBOX_KEY

    caplog.set_level(logging.DEBUG)
    client: httpx.AsyncClient = api["client"]
    await api["admin"].set_faults(
        {"run-tsa": {"fail_next": 1, "statuses": [503], "retry_after": 0.1}}
    )
    doc = await api["admin"].create_document()
    flow = (await client.post("/v1/document-jobs", json=intent(doc, tsa=True))).json()
    assert (await wait_terminal(client, flow["id"]))["status"] == "completed"
    calls = (await client.get(f"/v1/jobs/{flow['id']}/calls")).json()
    tsa = [c for c in calls if c["target"] == "run-tsa"]
    assert [(c["step"], c["attempt"], c["status"]) for c in tsa] == [
        ("append_tsa", 1, 503),
        ("append_tsa", 2, 200),
    ]
    assert all(c["duration_ms"] > 0 and c["idempotency_key"].endswith(":append_tsa") for c in tsa)
    assert tsa[0]["response_headers"]["retry-after"] == "0.1"
    assert "injected_fault" in tsa[0]["response_body"] and tsa[0]["error"]
    assert {"document_entity_id", "witness_hash"} <= set(tsa[1]["request"]["fields"])
    assert next(c["target"] for c in calls if c["status"] == 200) == "store-encrypted-custody"
    shown = cli(
        "calls",
        flow["id"][-12:],
        "--full",
        env=cli_env(
            "sqlite:///unused.db",
            {"ECOSIGN_ORCH_API_URL": api["url"], "ECOSIGN_ORCH_API_TOKEN": READ},
        ),
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        "run-tsa" in shown.stdout and "HTTP 503" in shown.stdout and "retry-after" in shown.stdout
    )
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    for secret in (SANDBOX_KEY, WRITE, READ):
        for where, text in (("call log", json.dumps(calls)), ("CLI", shown.stdout + shown.stderr)):
            assert secret not in text, f"{where} shows a secret"
        assert secret not in logged, "a log record shows a secret"
    assert (await api["anon"].get(f"/v1/jobs/{flow['id']}/calls")).status_code == 401


async def test_failures_are_grouped_and_a_bulk_retry_brings_a_group_back(
    api: dict[str, Any],
) -> None:
    client: httpx.AsyncClient = api["client"]
    ids = await two_failed_one_completed(api)
    groups = (await client.get("/v1/failures")).json()
    assert len(groups) == 1 and groups[0]["count"] == 2
    assert groups[0]["kind"] == "ecosign.document" and groups[0]["step"] == "build_artifact"
    assert "400" in groups[0]["reason"] and groups[0]["example"] in ids[:2]
    selection = {"status": ["failed"], "step": "build_artifact", "reason": "-> 400"}
    dry = (await client.post("/v1/jobs:retry", json={**selection, "dry_run": True})).json()
    assert sorted(j["id"] for j in dry["selected"]) == sorted(ids[:2]) and dry["done"] == 0
    assert [(await client.get(f"/v1/jobs/{i}")).json()["status"] for i in ids[:2]] == [
        "failed",
        "failed",
    ], "a dry run changes nothing"
    refused = await client.post("/v1/jobs:retry", json={"status": []})
    assert refused.status_code == 422 and "status" in refused.text
    await api["admin"].set_faults({"build-artifact": None})
    last = [(await client.get(f"/v1/jobs/{i}/events")).json()[-1]["id"] for i in ids[:2]]
    remote = cli_env(
        "sqlite:///unused.db",
        {"ECOSIGN_ORCH_API_URL": api["url"], "ECOSIGN_ORCH_API_TOKEN": WRITE},
    )
    both = cli("retry", ids[0], "--status", "failed", env=remote)
    assert both.returncode == 2 and "not both" in both.stderr
    done = cli(
        "retry", "--status", "failed", "--step", "build_artifact", "--reason", "400", env=remote
    )
    assert done.returncode == 0, done.stderr
    assert "retry: 2 of 2 jobs" in done.stdout
    ends = [await wait_terminal(client, i, after) for i, after in zip(ids[:2], last, strict=True)]
    assert [end["status"] for end in ends] == ["completed", "completed"]
    assert (await client.get("/v1/failures")).json() == []


async def test_a_submission_takes_a_priority_and_a_not_before_time(api: dict[str, Any]) -> None:
    from datetime import UTC, datetime, timedelta

    client: httpx.AsyncClient = api["client"]
    doc = await api["admin"].create_document()
    later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    params = {"priority": 7, "not_before": later.isoformat()}
    created = await client.post("/v1/document-jobs", json=intent(doc), params=params)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["priority"] == 7 and job["status"] == "queued"
    assert abs(datetime.fromisoformat(job["run_at"]) - later) < timedelta(seconds=2)
    naive = {"not_before": "2030-01-01T09:00:00"}
    refused = await client.post("/v1/document-jobs", json=intent(doc), params=naive)
    assert refused.status_code == 422 and "not_before" in refused.text
    high = await client.post("/v1/document-jobs", json=intent(doc), params={"priority": 2**40})
    assert high.status_code == 422 and "priority" in high.text


async def test_a_batch_of_intents_is_one_transaction_with_the_single_submission_rules(
    api: dict[str, Any],
) -> None:
    client: httpx.AsyncClient = api["client"]
    before = await count_jobs(client)
    a, b = [await api["admin"].create_document() for _ in range(2)]
    bad = {"jobs": [intent(a), {"document_entity_id": "nope", "actions": {"protect": True}}]}
    refused = await client.post("/v1/document-jobs:batch", json=bad)
    assert refused.status_code == 422 and "jobs.1.document_entity_id" in refused.text
    assert await count_jobs(client) == before, "nothing of a refused batch is written"
    answers = await client.post(
        "/v1/document-jobs:batch", json={"jobs": [intent(a), intent(b), intent(a)]}
    )
    assert answers.status_code == 200, answers.text
    items = answers.json()
    assert [i["created"] for i in items] == [True, True, False]
    assert items[2]["job"]["id"] == items[0]["job"]["id"], "a repeat within the batch"
    assert await count_jobs(client) == before + 2


async def test_the_overview_counts_and_the_list_filters_by_failing_step_and_reason(
    api: dict[str, Any],
) -> None:
    client: httpx.AsyncClient = api["client"]
    ids = await two_failed_one_completed(api)
    view = (await client.get("/v1/overview")).json()
    assert view["statuses"] == {
        "queued": 0,
        "running": 0,
        "waiting": 0,
        "retrying": 0,
        "completed": 1,
        "failed": 2,
        "cancelled": 0,
    }
    assert view["waiting"] == []
    assert view["kinds"] == {"ecosign.document": {"completed": 1, "failed": 2}}
    assert view["queue_depth"] == 0 and view["oldest_waiting_id"] is None
    assert len(view["per_minute"]) == 15
    assert sum(m["completed"] for m in view["per_minute"]) == 1
    assert sum(m["failed"] for m in view["per_minute"]) == 2
    assert view["failures"][0]["count"] == 2 and view["failures"][0]["step"] == "build_artifact"
    events = (await client.get(f"/v1/jobs/{ids[2]}/events")).json()
    assert view["last_event_id"] >= events[-1]["id"]
    other = (await client.get("/v1/overview", params={"kind": "ffmpeg.transcode"})).json()
    assert sum(other["statuses"].values()) == 0 and other["failures"] == []

    def listed(**params: Any) -> Any:
        return client.get("/v1/jobs", params=params)

    by_step = (await listed(step="build_artifact", reason="-> 400")).json()
    assert [j["id"] for j in by_step["jobs"]] == [ids[1], ids[0]]
    assert by_step["next_cursor"] is None
    first = (await listed(step="build_artifact", limit=1)).json()
    rest = (await listed(step="build_artifact", limit=1, cursor=first["next_cursor"])).json()
    assert [j["id"] for j in first["jobs"] + rest["jobs"]] == [ids[1], ids[0]]
    assert (await listed(step="append_tsa")).json()["jobs"] == []
    assert (await listed(reason="no such words")).json()["jobs"] == []
    assert (await listed(step="x" * 201)).status_code == 422


async def test_a_stream_ticket_opens_the_event_stream_and_nothing_else(
    api: dict[str, Any],
) -> None:
    client: httpx.AsyncClient = api["client"]
    anon: httpx.AsyncClient = api["anon"]
    doc = await api["admin"].create_document()
    flow = (await client.post("/v1/document-jobs", json=intent(doc))).json()
    await wait_terminal(client, flow["id"])
    assert (await anon.post("/v1/stream-tickets")).status_code == 401
    reader = {"Authorization": f"Bearer {READ}"}
    issued = (await anon.post("/v1/stream-tickets", headers=reader)).json()
    assert issued["expires_in"] == 60 and issued["ticket"]
    ticket = issued["ticket"]

    params = {"job_id": flow["id"], "ticket": ticket}
    types = []
    async with anon.stream("GET", "/v1/events/stream", params=params) as stream:
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                types.append(line.removeprefix("event: "))
    assert types[0] == "job_queued" and types[-1] == "job_completed"

    expiry, _, signature = ticket.partition(".")
    for forged in (f"{int(expiry) + 3600}.{signature}", f"{expiry}.{'0' * 64}", "garbage"):
        refused = await anon.get("/v1/events/stream", params={**params, "ticket": forged})
        assert refused.status_code == 401 and "ticket" in refused.json()["detail"]
    # A ticket is not a token: no other route takes it.
    assert (await anon.get("/v1/jobs", params={"ticket": ticket})).status_code == 401
    as_bearer = {"Authorization": f"Bearer {ticket}"}
    assert (await anon.get(f"/v1/jobs/{flow['id']}", headers=as_bearer)).status_code == 401


async def test_the_console_is_served_with_a_strict_policy_and_the_api_without_one(
    api: dict[str, Any],
) -> None:
    anon: httpx.AsyncClient = api["anon"]
    page = await anon.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert 'data-auth="token"' in page.text  # the page holds no data: the browser asks for it
    script = await anon.get("/ui/static/api.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "content-security-policy" in script.headers
    assert (await anon.get("/ui/")).status_code == 308
    assert "content-security-policy" not in (await anon.get("/healthz")).headers
    flow_page = await anon.get("/ui/flows/0123abcd")
    assert flow_page.status_code == 200 and 'data-job-id="0123abcd"' in flow_page.text
