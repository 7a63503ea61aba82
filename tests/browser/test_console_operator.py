"""The console for an operator's day (issue 22 §1, §4, §5): a waiting flow says what it waits
for, Cancel asks first, a failure group is retried exactly as listed, every retry names its
token, a wrong token is asked for again, an unknown flow says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import ALICE, READ, artifacts, fits, sign_in
from tests.support.flows import SandboxAdmin


def intent(doc: str, **forensic: bool) -> dict[str, Any]:
    return {"document_entity_id": doc, "actions": {"protect": True}, "forensic": forensic}


@pytest.fixture
async def bitcoin_never(console: dict[str, Any]) -> AsyncIterator[SandboxAdmin]:
    """The sandbox's Bitcoin anchors stay pending until this test ends."""
    admin: SandboxAdmin = console["admin"]
    await admin.set_timing(bitcoin=None)
    try:
        yield admin
    finally:
        await admin.reset()  # the usual timing again


async def wait_status(client: httpx.AsyncClient, job_id: str, status: str) -> None:
    async with client.stream("GET", "/v1/events/stream", params={"job_id": job_id}) as stream:
        async for _ in stream.aiter_lines():
            if (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == status:
                return


async def test_a_waiting_flow_is_waiting_and_cancel_asks_first_and_leaves_no_future_check(
    console: dict[str, Any], bitcoin_never: SandboxAdmin, page: Page
) -> None:
    client: httpx.AsyncClient = console["client"]
    doc = await bitcoin_never.create_document()
    job = (await client.post("/v1/document-jobs", json=intent(doc, bitcoin=True))).json()
    await wait_status(client, job["id"], "waiting")

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{console['url']}/ui")
    await sign_in(page, ALICE)
    await expect(page.locator('#counts li[data-status="waiting"] .count')).to_have_text("1")
    await expect(page.locator('#counts li[data-status="queued"] .count')).to_have_text("0")
    await expect(page.locator("#waits")).to_contain_text("confirmation of the bitcoin anchor")
    row = page.locator(f'#flows tr[data-job-id="{job["id"]}"]')
    await expect(row.locator(".status")).to_have_text("waiting")
    await expect(row).to_contain_text("next check")
    await page.screenshot(path=artifacts() / "console-phone-waiting.png", full_page=True)

    await row.locator("a").click()
    facts = page.locator("#facts")
    await expect(page.locator("#flow-status")).to_have_text("waiting")
    for label in ("Waiting for", "Next check", "Gives up"):
        await expect(facts).to_contain_text(label)
    await expect(facts).to_contain_text("bitcoin")
    await expect(facts).not_to_contain_text("0 of 54")

    await page.click("#cancel")  # asks first; "Keep it" keeps it
    await expect(page.locator("#confirm-dialog")).to_be_visible()
    await page.click("#confirm-no")
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] != "cancelled"
    await page.click("#cancel")
    await page.click("#confirm-yes")
    await expect(page.locator("#flow-status")).to_have_text("cancelled")
    bitcoin = page.locator('#timeline li[data-step="anchor_bitcoin"]')
    await expect(bitcoin).to_contain_text("no longer waited for")
    titles = await bitcoin.locator(".seg").evaluate_all("segs => segs.map(s => s.title)")
    assert titles and not any("next check" in t for t in titles), titles
    await expect(page.locator("#events tbody tr").last).to_contain_text("ops-alice")
    final = (await client.get(f"/v1/jobs/{job['id']}")).json()
    step = next(s for s in final["steps"] if s["name"] == "anchor_bitcoin")
    assert "next_poll_at" not in step["data"], step


async def test_a_failure_group_is_retried_exactly_as_listed_in_the_name_of_its_token(
    console: dict[str, Any], page: Page
) -> None:
    admin: SandboxAdmin = console["admin"]
    client: httpx.AsyncClient = console["client"]
    fault = {"rate": 1.0, "statuses": [400], "body": {"error": "missing_witness_pdf"}}
    await admin.set_faults({"build-artifact": fault})
    listed = []
    for _ in range(2):
        doc = await admin.create_document()
        listed.append((await client.post("/v1/document-jobs", json=intent(doc))).json()["id"])
    for flow in listed:
        await wait_status(client, flow, "failed")

    await page.goto(f"{console['url']}/ui")
    await sign_in(page, ALICE)
    group = page.locator("#failures tbody tr")
    await expect(group.locator("td").first).to_have_text("2")
    await group.locator("button.retry-group").click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_contain_text("Retry 2 flows?")
    for flow in listed:
        await expect(dialog).to_contain_text(flow[-12:])

    # A third flow fails the same way after the list was shown: it is not retried.
    doc = await admin.create_document()
    late = (await client.post("/v1/document-jobs", json=intent(doc))).json()["id"]
    await wait_status(client, late, "failed")
    await admin.set_faults({"build-artifact": None})
    await page.click("#confirm-yes")
    await expect(page.locator("#notice")).to_contain_text("Retried 2 of 2 flows")
    for flow in listed:
        await wait_status(client, flow, "completed")
        events = (await client.get(f"/v1/jobs/{flow}/events")).json()
        actors = [
            e["data"].get("actor") for e in events if e["data"].get("reason") == "manual_retry"
        ]
        assert actors == ["ops-alice"]
    assert (await client.get(f"/v1/jobs/{late}")).json()["status"] == "failed"

    await page.goto(f"{console['url']}/ui/flows/{listed[0]}")
    who = page.locator('#events tbody tr[data-type="job_queued"] td[data-label="Who"]')
    await expect(who.last).to_have_text("ops-alice")


@pytest.mark.answers(404)
async def test_a_wrong_token_is_asked_for_again_and_an_unknown_flow_says_so(
    console: dict[str, Any], page: Page
) -> None:
    await page.goto(f"{console['url']}/ui")
    await expect(page.locator("#token-dialog")).to_be_visible()
    await page.fill("#token-input", "not-a-token")
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#token-why")).to_contain_text("That token was refused")
    await sign_in(page, READ)
    await expect(page.locator("#live")).to_have_text("live")

    missing = "01a00000-0000-7000-8000-000000000000"
    await page.goto(f"{console['url']}/ui/flows/{missing}")
    await expect(page.locator("#notice")).to_contain_text(f"No flow has the id {missing}")
    await expect(page.locator("#live")).to_have_text("no such flow")
    await fits(page, "main", 1280)
