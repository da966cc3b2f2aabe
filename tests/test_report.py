"""The static report is the printable snapshot of the workbench's views: one self-contained file
rendered from the same templates, numbers formatted, names not ids, times in the chain's time
zone, every string from the input files escaped, step timings last."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench_support import PLAN_SETTINGS, copy_data, planned_chain

from retailopt import pipeline
from retailopt.config import load_settings
from retailopt import report as report_module
from retailopt.report import refresh_report
from retailopt.warehouse import open_warehouse
from retailopt.workbench import views, web

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> tuple[Path, str]:
    return planned_chain(tmp_path_factory.mktemp("report-chain"))


@pytest.fixture()
def report(chain, tmp_path) -> tuple[str, dict, object]:
    data = copy_data(chain[0], tmp_path / "data")
    source = chain[0] / "artifacts" / "runs" / chain[1]
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    for name in ("routes_request.json", "routes_response.json"):
        (artifacts / name).write_bytes((source / name).read_bytes())
    wh = open_warehouse(load_settings({"data_dir": data, **PLAN_SETTINGS}, environ={}))
    run_id = chain[1]
    sender = views.lines(wh, "transfers", run_id, sort="-value", size=1)[0].rows[0]["from_store_id"]
    wh.execute("UPDATE `{dataset}.stores` SET name = @name WHERE store_id = @id", {"name": SCRIPT, "id": sender})
    wh.execute("UPDATE `{dataset}.products` SET name = CONCAT(name, ' & <b>Co</b>')")
    path = refresh_report(wh, run_id, artifacts)
    run = pipeline.get_run(wh, run_id)
    yield path.read_text(encoding="utf-8"), run, wh
    wh.close()


def test_the_report_is_one_self_contained_file_with_every_input_string_escaped(report):
    html, run, _ = report
    assert "<script" not in html and "<link" not in html and 'src="/' not in html and "href=\"/static" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the store's name, as text
    assert "&amp; &lt;b&gt;Co&lt;/b&gt;" in html and "<b>Co</b>" not in html
    assert re.search(r'<img class="map" alt="[^"]+" src="data:image/svg\+xml;base64,', html)
    assert "<style>" in html and ".tiles" in html  # the workbench's style, inline


def test_the_report_shows_the_workbench_views_formatted_with_names_and_local_times(report):
    html, run, wh = report
    kpis = run["kpis"]
    headings = re.findall(r"<main>.*?</main>", html, re.S)[0]
    sections = re.findall(r"\n<h2>([^<]+)</h2>", headings)
    assert sections[:5] == ["Key figures", "Exceptions after the plan", "Transfers between stores",
                            "Distribution-centre orders", "Routes"]
    assert sections[-1] == "Step timings" and html.rindex("<h2>Step timings</h2>") > html.rindex("<h2>Replay")
    timings = html.split("<h2>Step timings</h2>")[1]
    for step, seconds in run["timings"].items():  # named for people, not by the pipeline's keys
        assert f"<td>{report_module.step_label(step)}</td><td>{web.fmt_num(seconds, 1)}</td>" in timings
        assert f"<td>{step}</td>" not in timings
    # The same tiles as the overview page, numbers with separators and money formatted.
    assert f"{kpis['units_ordered']:,} units, {web.fmt_money(kpis['order_value'])}" in html
    assert f"{kpis['route_km']:,.1f} km" in html
    # The worklist and the lines with names, as the workbench shows them.
    stores = wh.query("SELECT name FROM `{dataset}.stores`").name.tolist()
    transfers = html.split("<h2>Transfers between stores</h2>")[1].split("<h2>")[0]
    assert sum(f"<td>{web_escape(s)}</td>" in transfers for s in stores) >= 2
    summary = views.worklist_summary(wh, run["run_id"], store_id=None, category=None)
    exceptions = html.split("<h2>Exceptions after the plan</h2>")[1].split("<h2>")[0]
    for s in summary:
        assert views.REASONS.get(s["reason_code"], s["reason_code"]) in exceptions
    assert f"of {sum(s['positions'] for s in summary):,}" in exceptions
    # Times in the chain's time zone, to the minute; no UTC microseconds.
    tz = run["parameters"]["timezone"]
    assert web.fmt_time(run["started_at"], tz) in html and re.search(r"\d{2}:\d{2} C[SD]T", html)
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{3,}", html)
    assert f"/ui/runs/{run['run_id']}" in html  # points at the live views


def web_escape(text: str) -> str:
    return str(web.environment().from_string("{{ v }}").render(v=text))
