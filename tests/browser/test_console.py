"""The web console in a real headless Chromium: flows appear and finish live, a failure shows
what the function answered, Retry brings it back, user-controlled text stays text."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.browser.conftest import READ, WRITE, artifacts, fits, sign_in
from tests.support.flows import SANDBOX_KEY


def intent(doc: str, **extra: Any) -> dict[str, Any]:
    return {"document_entity_id": doc, "actions": {"protect": True}, **extra}


async def test_a_submitted_flow_appears_and_completes_on_screen_without_a_reload(
    console: dict[str, Any], page: Page
) -> None:
    client: httpx.AsyncClient = console["client"]
    await page.goto(f"{console['url']}/ui")
    await sign_in(page, READ)
    await expect(page.locator("#live")).to_have_text("live")
    doc = await console["admin"].create_document()
    job = (await client.post("/v1/document-jobs", json=intent(doc, forensic={"tsa": True}))).json()

    row = page.locator(f'#flows tr[data-job-id="{job["id"]}"]')
    await expect(row).to_have_attribute("data-status", "completed")
    await expect(page.locator('#counts li[data-status="completed"] .count')).to_have_text("1")
    await page.screenshot(path=artifacts() / "console-flows.png", full_page=True)

    await row.locator("a").click()
    await expect(page.locator("#flow-status")).to_have_text("completed")
    steps = page.locator("#timeline li")
    await expect(steps).to_have_count(7)
    for status in await steps.evaluate_all("items => items.map(i => i.dataset.status)"):
        assert status in ("succeeded", "skipped")
    tsa = page.locator('#timeline li[data-step="append_tsa"] .seg')
    await expect(tsa).to_have_attribute("data-status", "succeeded")
    await expect(page.locator("#calls tbody tr").first).to_be_visible()
    await expect(page.locator("#events tbody tr").last).to_have_attribute(
        "data-type", "job_completed"
    )
    await expect(page.locator("#facts")).to_contain_text("Implied lifecycle_status")
    await page.screenshot(path=artifacts() / "console-flow.png", full_page=True)
    html = await page.content()
    assert SANDBOX_KEY not in html and WRITE not in html and READ not in html


async def test_a_failed_flow_shows_the_answer_and_retry_brings_it_to_completed(
    console: dict[str, Any], page: Page
) -> None:
    admin = console["admin"]
    client: httpx.AsyncClient = console["client"]
    await admin.set_faults(
        {
            "build-artifact": {
                "rate": 1.0,
                "statuses": [400],
                "body": {"error": "missing_witness_pdf"},
            }
        }
    )
    doc = await admin.create_document()
    job = (await client.post("/v1/document-jobs", json=intent(doc))).json()

    await page.goto(f"{console['url']}/ui/flows/{job['id']}")
    await sign_in(page, READ)  # a read-only token first: Retry will ask for a write token
    await expect(page.locator("#flow-status")).to_have_text("failed")
    await expect(page.locator("#failure")).to_be_visible()
    await expect(page.locator("#failure-step")).to_have_text("build_artifact")
    await expect(page.locator("#failure-status")).to_contain_text("HTTP 400")
    await expect(page.locator("#failure-body")).to_contain_text("missing_witness_pdf")
    seg = page.locator('#timeline li[data-step="build_artifact"] .seg')
    await expect(seg).to_have_attribute("data-status", "failed")
    await page.screenshot(path=artifacts() / "console-flow-failed.png", full_page=True)

    await admin.set_faults({"build-artifact": None})
    await page.click("#retry")
    await sign_in(page, WRITE)
    await expect(page.locator("#flow-status")).to_have_text("completed")
    await expect(page.locator("#failure")).to_be_hidden()
    await expect(page.locator("#retry")).to_be_disabled()
    statuses = await page.locator("#calls tbody tr td.http").all_text_contents()
    assert "400" in statuses and statuses[-1].startswith("2")


async def test_user_controlled_text_renders_as_text_under_a_strict_policy(
    console: dict[str, Any], page: Page
) -> None:
    hostile = {
        "title": "<script>window.__owned = 1</script>",
        "note": '"><img src=x onerror="window.__owned = 2">',
    }
    doc = await console["admin"].create_document()
    client: httpx.AsyncClient = console["client"]
    job = (await client.post("/v1/document-jobs", json=intent(doc, metadata=hostile))).json()

    answer = await page.goto(f"{console['url']}/ui/flows/{job['id']}")
    assert answer is not None
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "'unsafe-inline'" not in policy
    await sign_in(page, READ)
    facts = page.locator("#facts")
    await expect(facts).to_contain_text("<script>window.__owned = 1</script>")
    await expect(facts).to_contain_text('"><img src=x onerror=')
    assert await page.locator("#facts img, #facts script").count() == 0
    assert await page.evaluate("window.__owned") is None
    # A job id in the address is checked before it reaches a page.
    refused = await client.get("/ui/flows/%22%3E%3Cscript%3E")
    assert refused.status_code == 422 and "<script>" not in refused.text


async def test_the_console_fits_a_phone_and_filters_by_failure(
    console: dict[str, Any], page: Page
) -> None:
    admin = console["admin"]
    client: httpx.AsyncClient = console["client"]
    failing = await admin.create_document()
    reason = "missing_witness_pdf: the witness PDF was not found in storage for this document"
    await admin.set_faults(
        {
            "build-artifact": {
                "rate": 1.0,
                "statuses": [422],
                "documents": [failing],
                "body": {"error": reason},
            }
        }
    )
    bad = (await client.post("/v1/document-jobs", json=intent(failing))).json()
    ok_doc = await admin.create_document()
    good = (await client.post("/v1/document-jobs", json=intent(ok_doc))).json()
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{console['url']}/ui")
    await sign_in(page, READ)
    await expect(page.locator(f'#flows tr[data-job-id="{bad["id"]}"]')).to_have_attribute(
        "data-status", "failed"
    )
    await expect(page.locator(f'#flows tr[data-job-id="{good["id"]}"]')).to_have_attribute(
        "data-status", "completed"
    )
    group = page.locator("#failures tbody tr")
    await expect(group).to_have_count(1)
    await expect(group).to_contain_text("build_artifact")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at a 390 px viewport"
    for table in ("#flows", "#failures"):
        await fits(page, table, 390)
    # The reason reads as text: its box holds at least 20 characters of its own font.
    text = group.locator("td.reason a")
    await expect(text).to_contain_text("missing_witness_pdf")
    room = await text.evaluate(
        """(a) => {
            const box = a.closest("td").getBoundingClientRect().width;
            const probe = document.createElement("span");
            probe.textContent = "abcdefghijklmnopqrst";
            a.append(probe);
            const twenty = probe.getBoundingClientRect().width;
            probe.remove();
            return box / twenty;
        }"""
    )
    assert room >= 1, f"the failure reason's box holds {room * 20:.0f} characters"
    await page.screenshot(path=artifacts() / "console-phone.png", full_page=True)

    await group.locator("a").click()  # the group's link filters the list by step and reason
    await expect(page.locator("#flows tbody tr")).to_have_count(1)
    await expect(page.locator("#flows tbody tr")).to_have_attribute("data-job-id", bad["id"])
    await page.goto(f"{console['url']}/ui?id={bad['id'][-12:]}")
    await expect(page.locator("#flows tbody tr")).to_have_attribute("data-job-id", bad["id"])

    await page.goto(f"{console['url']}/ui/flows/{bad['id']}")
    await expect(page.locator("#flow-status")).to_have_text("failed")
    await expect(page.locator("#calls tbody tr")).not_to_have_count(0)
    await expect(page.locator("#events tbody tr").last).to_have_attribute("data-type", "job_failed")
    for section in ("#facts", "#failure", "#timeline", "#calls", "#events"):
        await fits(page, section, 390)
    answer = page.locator("#calls tbody tr").last.locator("summary")
    assert (await answer.bounding_box() or {"width": 0})["width"] >= 200
    await page.screenshot(path=artifacts() / "console-phone-flow.png", full_page=True)
