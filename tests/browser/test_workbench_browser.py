"""The workbench end to end in a real headless browser (Debian's chromium driven by Playwright).

`retailopt serve`'s app (the API, the in-process bus and every handler) serves a small planned
chain on a loopback port. The browser approves a transfer, rejects one with a reason, makes an
invalid edit and sees the error, makes a valid one, approves DC orders in bulk and releases; the
test then checks the events on the bus and the plan_decisions rows, and runs axe-core on the
pages. Screenshots (1280×800) go to the test's artifacts folder; RETAILOPT_SCREENSHOTS=DIR copies
them there too (the README's picture is docs/img/workbench.png).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from services_support import free_port
from workbench_support import PLAN_SETTINGS, copy_data, planned_chain

from retailopt.config import load_settings
from retailopt.services.local import start_local

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data, run_id = planned_chain(tmp_path_factory.mktemp("browser-chain"))
    work = copy_data(data, tmp_path_factory.mktemp("browser-data"))
    settings = load_settings({"data_dir": work, **PLAN_SETTINGS}, environ={})
    chain = start_local(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(chain.asgi, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", chain, run_id
    server.should_exit = True
    thread.join(10)
    chain.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def _shot(page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path))
    extra = os.environ.get("RETAILOPT_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(extra) / path.name)


def _row(page, line_id: str):
    return page.locator(f"tr#line-{line_id}")


def test_review_edit_approve_and_release_in_the_browser(served, browser, shots):
    base, chain, run_id = served
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    # The invalid edit's page answers 400 on purpose; any other console error is a fault.
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 400" not in m.text
            else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(base + "/")
    assert page.get_by_role("heading", name="Planning runs").is_visible()
    _shot(page, shots, "runs")
    page.locator(f"a[href='/ui/runs/{run_id}']").first.click()
    assert page.get_by_role("heading", name="Stores at risk").is_visible()
    _shot(page, shots, "overview")

    page.goto(f"{base}/ui/runs/{run_id}/transfers?sort=line")
    ids = page.locator("tbody tr[id^=line-]").evaluate_all("rows => rows.map(r => r.id.slice(5))")
    assert len(ids) >= 3, ids
    approve, reject, edit = ids[:3]
    _row(page, approve).get_by_role("button", name="Approve").click()
    assert "approved" in _row(page, approve).inner_text()
    page.fill(f"#reason-{reject}", "no room on the truck")
    _row(page, reject).get_by_role("button", name="Reject").click()
    assert "no room on the truck" in _row(page, reject).inner_text()
    planned = int(page.input_value(f"#qty-{edit}"))
    page.fill(f"#qty-{edit}", str(planned + 100_000))
    _row(page, edit).get_by_role("button", name="Set").click()
    error = page.locator("#form-error")
    assert error.is_visible() and "more than the sender" in error.inner_text()
    _shot(page, shots, "invalid-edit")
    page.fill(f"#qty-{edit}", str(planned - 1))
    _row(page, edit).get_by_role("button", name="Set").click()
    assert f"planned {planned}" in _row(page, edit).inner_text()
    _row(page, edit).get_by_role("button", name="Approve").click()
    assert "approved" in _row(page, edit).inner_text()
    _shot(page, shots, "workbench")

    page.goto(f"{base}/ui/runs/{run_id}/orders?sort=line")
    orders = page.locator("tbody tr[id^=line-]").evaluate_all("rows => rows.map(r => r.id.slice(5))")[:2]
    for line_id in orders:
        page.check(f"input[name=line][value='{line_id}']")
    page.get_by_role("button", name="Approve selected").click()
    assert all("approved" in _row(page, o).inner_text() for o in orders)

    page.goto(f"{base}/ui/runs/{run_id}")
    page.get_by_role("button", name="Release approved lines").click()
    assert page.locator(".status.s-released").first.is_visible()
    _shot(page, shots, "released")
    assert not errors, errors

    events = [m for topic, m in chain.bus.published if topic == "reorders"]
    transfers = {m["transfer"]["transfer_id"]: m["transfer"]["quantity"] for m in events if m["kind"] == "transfer"}
    assert transfers == {approve: transfers.get(approve), edit: planned - 1} and transfers[approve] > 0
    assert sorted(m["order"]["order_id"] for m in events if m["kind"] == "reorder") == sorted(orders)
    rows = chain.runtime.warehouse.query(
        "SELECT line_id, action, old_quantity, new_quantity, reason, decided_by FROM `{dataset}.plan_decisions` "
        "WHERE run_id = @r ORDER BY decision_id", {"r": run_id})
    assert list(zip(rows.line_id, rows.action)) == [
        (approve, "APPROVE"), (reject, "REJECT"), (edit, "EDIT"), (edit, "APPROVE"),
        *[(o, "APPROVE") for o in orders], (run_id, "RELEASE")]
    assert rows.reason[1] == "no room on the truck" and (rows.old_quantity[2], rows.new_quantity[2]) == (planned,
                                                                                                       planned - 1)
    assert rows.decided_by.nunique() == 1 and rows.decided_by[0]
    # Released: the buttons are gone and a second release is refused.
    page.goto(f"{base}/ui/runs/{run_id}/transfers")
    assert page.get_by_role("button", name="Approve").count() == 0
    context.close()


def test_pages_have_no_serious_accessibility_violations(served, browser, shots):
    base, _, run_id = served
    # axe-core is injected by the test (the app's policy would refuse an injected script).
    context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
    page = context.new_page()
    found = {}
    # A position's drill-down, opened from the worklist as a planner would.
    page.goto(f"{base}/ui/runs/{run_id}/worklist")
    page.locator("table.grid tbody a").first.click()
    assert page.locator("svg.chart").is_visible() and page.get_by_role("heading", name="Lines that touch it").is_visible()
    position = page.url.removeprefix(base)
    _shot(page, shots, "position")
    # The routes' map (Leaflet, served by the app; no tile server is reachable here): hovering over a
    # stop shows its place, arrival time and load.
    page.goto(f"{base}/ui/runs/{run_id}/routes")
    page.locator("path.leaflet-interactive").first.wait_for()
    page.locator("#route-map path.leaflet-interactive").last.hover(force=True)
    tooltip = page.locator(".leaflet-tooltip")
    tooltip.wait_for()
    assert "arrives" in tooltip.inner_text() and "units" in tooltip.inner_text()
    _shot(page, shots, "routes")
    for path in ("/", f"/ui/runs/{run_id}", f"/ui/runs/{run_id}/worklist", f"/ui/runs/{run_id}/transfers",
                 f"/ui/runs/{run_id}/orders", f"/ui/compare?a={run_id}&b={run_id}", "/docs", position,
                 f"/ui/runs/{run_id}/routes"):
        page.goto(base + path)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [(v["id"], v["help"], len(v["nodes"])) for v in result["violations"]
                   if v["impact"] in ("serious", "critical")]
        if serious:
            found[path] = serious
    context.close()
    assert not found, found
