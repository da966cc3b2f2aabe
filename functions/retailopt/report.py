"""A run's artifacts: plan JSON, routes GeoJSON, a self-contained HTML report and a summary JSON.

The report is the printable snapshot of the workbench's views: the same Jinja2 templates
(`retailopt/workbench/templates/_views.html`: key figures, exception worklist, transfer and
order lines) rendered into one file with its style inline and its charts as inline SVG, numbers
formatted, stores and products by name, times in the chain's time zone, every string escaped.
Step timings come last.
"""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen on servers
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from retailopt.warehouse import Warehouse  # noqa: E402

CHARTS = 6


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _image(fig: plt.Figure) -> str:
    # SVG renders several times faster than PNG here and stays sharp when zoomed.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def routes_geojson(artifacts_dir: Path, stores: pd.DataFrame, dcs: pd.DataFrame, run_date) -> dict:
    """GeoJSON of the routes from the saved Route Optimization request and response."""
    from google.maps import routeoptimization_v1 as ro

    from retailopt.routing import request_from_json, response_to_geojson
    from retailopt.routing.tables import locations_frame

    request_path, response_path = artifacts_dir / "routes_request.json", artifacts_dir / "routes_response.json"
    if not request_path.exists() or not response_path.exists():
        return {"type": "FeatureCollection", "features": []}
    request = request_from_json(request_path.read_text(encoding="utf-8"))
    response = ro.OptimizeToursResponse.from_json(response_path.read_text(encoding="utf-8"),
                                                  ignore_unknown_fields=True)
    return response_to_geojson(request, response, run_date=run_date, locations=locations_frame(stores, dcs))


def _map(stores: pd.DataFrame, dcs: pd.DataFrame, risk: pd.Series, geojson: dict) -> str:
    """`risk`: positions at risk before the plan, by store id."""
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    sizes = 20 + 4 * stores.store_id.map(risk).fillna(0).to_numpy() * (40 / max(len(stores), 40))
    ax.scatter(stores.longitude, stores.latitude, s=sizes, c="#4a7ab5", alpha=0.7, label="store (size: positions at risk)")
    for row in stores.itertuples() if len(stores) <= 40 else ():  # more names than that cover the map
        ax.annotate(row.name, (row.longitude, row.latitude), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.scatter(dcs.longitude, dcs.latitude, marker="s", s=90, c="#b54a4a", label="distribution centre")
    colours = plt.get_cmap("tab10")
    lines = [f for f in geojson.get("features", []) if f["geometry"]["type"] == "LineString"]
    for i, feature in enumerate(lines):
        xs, ys = zip(*feature["geometry"]["coordinates"])
        name = feature.get("properties", {}).get("vehicle_id", f"route {i + 1}")
        ax.plot(xs, ys, "-", color=colours(i % 10), linewidth=1.6, alpha=0.85, label=f"route {name}")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect(1 / max(0.2, abs(float(stores.latitude.mean())) and 0.75))
    ax.legend(fontsize=7, loc="best")
    ax.set_title("Stores, distribution centre and planned routes")
    return _image(fig)


def _forecast_charts(wh: Warehouse, run: dict, names: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    at_risk = wh.query(
        "SELECT store_id, product_id, on_hand, reorder_point FROM `{dataset}.inventory_policy` "
        "WHERE run_id = @run_id AND status = 'STOCKOUT_RISK' "
        "ORDER BY expected_lost_units DESC, store_id, product_id LIMIT @n", {"run_id": run["run_id"], "n": CHARTS})
    charts = []
    run_date = run["run_date"]
    for row in at_risk.itertuples():
        params = {"run_id": run["run_id"], "store_id": row.store_id, "product_id": row.product_id}
        forecast = wh.query(
            "SELECT forecast_date, forecast_mean, lower_bound, upper_bound FROM `{dataset}.forecasts` "
            "WHERE run_id = @run_id AND store_id = @store_id AND product_id = @product_id ORDER BY forecast_date",
            params)
        history = wh.query(
            "SELECT sale_date, units FROM `{dataset}.sales` WHERE store_id = @store_id AND product_id = @product_id "
            "AND sale_date >= @since AND sale_date < @until ORDER BY sale_date",
            {"store_id": row.store_id, "product_id": row.product_id, "since": run_date - timedelta(days=91),
             "until": run_date})
        days = pd.date_range(run_date - timedelta(days=91), run_date - timedelta(days=1))
        units = history.set_index(pd.to_datetime(history.sale_date)).units.reindex(days, fill_value=0)
        store = names["store"].get(row.store_id, row.store_id)
        product = names["product"].get(row.product_id, row.product_id)
        fig, ax = plt.subplots(figsize=(6.2, 2.6))
        ax.plot(units.index, units.to_numpy(dtype=float), color="#555", linewidth=1, label="sales")
        dates = pd.to_datetime(forecast.forecast_date)
        ax.plot(dates, forecast.forecast_mean, color="#1f77b4", label="forecast")
        ax.fill_between(dates, forecast.lower_bound.astype(float), forecast.upper_bound.astype(float),
                        color="#1f77b4", alpha=0.2, label="interval")
        ax.axhline(0, color="#ccc", linewidth=0.5)
        # matplotlib writes text into the SVG escaped; the title is the input files' names.
        ax.set_title(f"{store}: {product} (on hand {row.on_hand:,}, reorder point {row.reorder_point:,.0f})",
                     fontsize=9)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
        charts.append((f"{store}: {product}", _image(fig)))
    return charts


def _replay_section(wh: Warehouse) -> dict[str, Any] | None:
    """The latest replay's strategies side by side (replay_results), or None without a replay."""
    replay = wh.query(
        "SELECT replay_id, strategy, start_date, end_date, days, replan_every_days, forecaster, fill_rate, "
        "cycle_service_level, lost_units, avg_on_hand_units, avg_on_hand_value, units_moved, trips, "
        "transfer_cost, ordering_cost, holding_cost, lost_sales_cost, operating_cost, total_cost, "
        "warmup_days, steady_lost_units, steady_total_cost, cost_lower_bound "
        "FROM `{dataset}.replay_results` "
        "WHERE replay_id = (SELECT replay_id FROM `{dataset}.replay_results` ORDER BY created_at DESC LIMIT 1)")
    if replay.empty:
        return None
    from retailopt.replay import LABELS

    first = replay.iloc[0]
    order = {name: i for i, name in enumerate(LABELS)}
    replay = replay.assign(_o=replay["strategy"].map(order).fillna(len(order))).sort_values("_o")
    # The measures that decide, under short headings so the table fits the page; every column is
    # in the table replay_results.
    columns = {"strategy": "strategy", "fill_rate": "fill rate", "cycle_service_level": "cycle service level",
               "lost_units": "lost units", "avg_on_hand_units": "avg on hand", "avg_on_hand_value": "on hand value",
               "units_moved": "units moved", "trips": "trips", "transfer_cost": "transfer cost",
               "holding_cost": "holding", "operating_cost": "operating cost", "lost_sales_cost": "lost margin",
               "total_cost": "total cost", "steady_lost_units": "steady lost units",
               "steady_total_cost": "steady total cost"}
    rows = []
    for record in replay.to_dict("records"):
        row = [LABELS.get(record["strategy"], record["strategy"])]
        for column in list(columns)[1:]:
            value = record[column]
            row.append("–" if pd.isna(value) else
                       f"{value:.3f}" if column in ("fill_rate", "cycle_service_level") else f"{value:,.0f}")
        rows.append(row)
    by = replay.set_index("strategy")
    regret = None
    if {"policy_rebalance", "hindsight"} <= set(by.index):
        c, h = by.loc["policy_rebalance"], by.loc["hindsight"]
        regret = {"lost_units": f"{c['lost_units'] - h['lost_units']:,.0f}",
                  "total_cost": f"{c['total_cost'] - h['total_cost']:,.0f}",
                  "share": f"{(c['total_cost'] - h['total_cost']) / h['total_cost']:+.1%}" if h["total_cost"] else "–",
                  "bound": "–" if pd.isna(h["cost_lower_bound"]) else f"{h['cost_lower_bound']:,.0f}",
                  # Where it comes from: the window's total cost by component, and the steady state.
                  "components": [(label, f"{c[col] - h[col]:+,.0f}") for label, col in (
                      ("holding", "holding_cost"), ("lost margin", "lost_sales_cost"),
                      ("ordering", "ordering_cost"), ("transfers", "transfer_cost"))],
                  "steady": "–" if pd.isna(c["steady_total_cost"]) or pd.isna(h["steady_total_cost"])
                  else f"{c['steady_total_cost'] - h['steady_total_cost']:+,.0f}"}
    warmup = first["warmup_days"]
    return {"replay_id": str(first["replay_id"]), "start": pd.Timestamp(first["start_date"]).date().isoformat(),
            "end": pd.Timestamp(first["end_date"]).date().isoformat(), "days": int(first["days"]),
            "every": int(first["replan_every_days"]), "columns": list(columns.values()), "rows": rows,
            "warmup": None if pd.isna(warmup) else int(warmup), "regret": regret}


ANOMALY_EPISODES = 15  # rows of the report's anomaly table


def _anomaly_section(wh: Warehouse, run: dict) -> dict[str, Any] | None:
    """The run's sales anomalies (sales_anomalies), consecutive days of one kind per store and
    product as one episode: those without a promotion first, then the most unusual (highest
    anomaly probability, then the largest difference from the expected units)."""
    rows = wh.query(
        "SELECT a.store_id, s.name AS store_name, a.product_id, p.name AS product_name, a.sale_date, a.kind, "
        "a.units, a.expected, a.anomaly_probability, a.on_promotion, a.excluded_from_training, a.method "
        "FROM `{dataset}.sales_anomalies` AS a "
        "LEFT JOIN `{dataset}.stores` AS s ON s.store_id = a.store_id "
        "LEFT JOIN `{dataset}.products` AS p ON p.product_id = a.product_id "
        "WHERE a.run_id = @run_id", {"run_id": run["run_id"]})
    if rows.empty:
        # Also what a bigquery_ml run shows until its forecast step runs ML.DETECT_ANOMALIES.
        return None
    rows["sale_date"] = pd.to_datetime(rows["sale_date"])
    rows = rows.sort_values(["store_id", "product_id", "kind", "sale_date"]).reset_index(drop=True)
    same = ((rows[["store_id", "product_id", "kind"]] == rows[["store_id", "product_id", "kind"]].shift()).all(axis=1)
            & (rows["sale_date"].diff() == pd.Timedelta(days=1)))
    rows["episode"] = (~same).cumsum()
    rows["deviation"] = (rows["units"] - rows["expected"]).abs()
    episodes = rows.groupby("episode").agg(
        store=("store_name", "first"), store_id=("store_id", "first"), product=("product_name", "first"),
        product_id=("product_id", "first"), kind=("kind", "first"), first_day=("sale_date", "min"),
        last_day=("sale_date", "max"), days=("sale_date", "size"), units=("units", "sum"),
        expected=("expected", "sum"), probability=("anomaly_probability", "max"),
        deviation=("deviation", "sum"), promotion=("on_promotion", "any"),
        left_out=("excluded_from_training", "all"))
    n_episodes = len(episodes)
    # A promotion explains its own spike: unexplained episodes first.
    episodes = episodes.assign(unexplained=~episodes["promotion"].astype(bool)).sort_values(
        ["unexplained", "probability", "deviation"], ascending=False).head(ANOMALY_EPISODES)
    table = [[e.store if isinstance(e.store, str) else e.store_id,  # names from the input files: escaped
              e.product if isinstance(e.product, str) else e.product_id, e.kind,
              e.first_day.date().isoformat(), e.last_day.date().isoformat(), f"{e.days:,}", f"{e.units:,.0f}",
              f"{e.expected:,.1f}", f"{e.probability:.4f}", "yes" if e.promotion else "", "yes" if e.left_out else ""]
             for e in episodes.itertuples()]
    spikes = int((rows["kind"] == "spike").sum())
    return {"days": len(rows), "spikes": spikes, "dips": len(rows) - spikes,
            "methods": ", ".join(sorted(str(m) for m in rows["method"].unique())),
            "excluded": int(rows["excluded_from_training"].sum()), "shown": len(episodes), "episodes": n_episodes,
            "columns": ["store", "product", "kind", "from", "to", "days", "units", "expected", "anomaly probability",
                        "on promotion", "left out of the fit"], "rows": table}


def refresh_report(wh: Warehouse, run_id: str, artifacts_dir: Path) -> Path:
    """Write a COMPLETE run's artifacts again from the warehouse (e.g. once a replay finished)."""
    from retailopt.pipeline import get_run

    run = get_run(wh, run_id)
    if run is None or run.get("status") != "COMPLETE":
        raise ValueError(f"run {run_id} is not a COMPLETE run")
    return write_artifacts(wh, run, run.get("kpis") or {}, run.get("timings") or {}, artifacts_dir)["report"]


REPORT_ROWS = 100  # worklist positions and lines of each kind the report lists


def _names(wh: Warehouse) -> dict[str, dict[str, str]]:
    stores = wh.query("SELECT store_id, name FROM `{dataset}.stores`")
    products = wh.query("SELECT product_id, name FROM `{dataset}.products`")
    dcs = wh.query("SELECT dc_id, name FROM `{dataset}.distribution_centers`")
    return {"store": dict(zip(stores.store_id, stores.name)), "product": dict(zip(products.product_id, products.name)),
            "dc": dict(zip(dcs.dc_id, dcs.name))}


def _timezone(run: dict) -> str:
    parameters = run.get("parameters") or {}
    return str(parameters.get("timezone") or "America/Chicago") if isinstance(parameters, dict) else "America/Chicago"


# What each timed step did, for the report's readers (the keys are the pipeline's step names; the
# plan's parts are timed inside "plan", the solves inside their part).
STEP_LABELS = {
    "setup": "Setup", "import": "Import of the input files", "forecast": "Forecast", "plan": "Plan",
    "policy": "Plan: inventory targets", "transfer_pricing": "Plan: pricing the transfers by their routes (within the transfers and orders below)",
    "rebalancing": "Plan: transfers and distribution-centre orders", "routing": "Plan: routes",
    "routing_solve": "Plan: route solves", "publish": "Publish",
}


def step_label(step: str) -> str:
    """A step's name for people; a step this table does not know keeps its name, made readable."""
    return STEP_LABELS.get(step) or step.replace("_", " ").capitalize()


def render_report(wh: Warehouse, run: dict, kpis: dict, timings: dict, *, geojson: dict) -> str:
    """The report's HTML: the workbench's views of the run, then what only the report shows."""
    from retailopt.pipeline import read_run_rows, read_table
    from retailopt.workbench import store, views, web

    run_id = run["run_id"]
    tz = _timezone(run)
    figures = store.published(wh, run_id) or {}
    summary = views.worklist_summary(wh, run_id, store_id=None, category=None)
    worklist = views.worklist(wh, run_id, store_id=None, category=None, reason=None, page=1, size=REPORT_ROWS,
                              total=sum(int(s["positions"]) for s in summary))
    lines = {kind: views.lines(wh, kind, run_id, sort="-value", page=1, size=REPORT_ROWS,
                               total=figures.get(f"{kind[:-1]}_lines"))[0] for kind in ("transfers", "orders")}
    names = _names(wh)
    # Counts from the warehouse: a chain's plan has millions of positions.
    status = wh.query("SELECT status, status_after_plan, COUNT(*) AS positions FROM `{dataset}.inventory_policy` "
                      "WHERE run_id = @run_id GROUP BY status, status_after_plan ORDER BY status, status_after_plan",
                      {"run_id": run_id})
    risk = wh.query("SELECT store_id, COUNT(*) AS n FROM `{dataset}.inventory_policy` WHERE run_id = @run_id "
                    "AND status = 'STOCKOUT_RISK' GROUP BY store_id", {"run_id": run_id})
    stores, dcs = read_table(wh, "stores"), read_table(wh, "distribution_centers")
    routes = read_run_rows(wh, "routes", run_id).sort_values(["start_time", "vehicle_id"])
    quarantine = read_run_rows(wh, "quarantine", run_id)
    places = {**names["store"], **names["dc"]}
    return web.render(
        "report.html", run=run, kpis=kpis, figures=figures, tz=tz, time=lambda v: web.fmt_time(v, tz),
        reasons=views.REASONS, summary=summary, worklist=worklist, lines=lines,
        routes=[{**r, "depot": places.get(r["depot_id"], r["depot_id"])} for r in views.records(routes)],
        status=views.records(status),
        map_svg=_map(stores, dcs, pd.Series(risk.n.to_numpy(), index=risk.store_id), geojson),
        charts=_forecast_charts(wh, run, names), anomalies=_anomaly_section(wh, run),
        quarantine=views.records(quarantine.sort_values(["source_file", "row_number"], na_position="first").head(200)),
        quarantined=len(quarantine), replay=_replay_section(wh),
        timings={step_label(step): seconds for step, seconds in timings.items()},
        css=web.static_file("workbench.css")[0].decode("utf-8")).decode("utf-8")


def write_artifacts(wh: Warehouse, run: dict, kpis: dict, timings: dict, artifacts_dir: Path) -> dict[str, Path]:
    """The run's workbench tables (written again unless the run is COMPLETE already), then its files."""
    from retailopt.pipeline import read_run_rows, read_table
    from retailopt.workbench import store

    run_id = run["run_id"]
    store.publish(wh, run_id, pd.Timestamp(run["run_date"]).date(), replace=run.get("status") != "COMPLETE")
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    transfers = read_run_rows(wh, "transfers", run_id).drop(columns=["run_id"])
    orders = read_run_rows(wh, "replenishment_orders", run_id).drop(columns=["run_id"])
    routes = read_run_rows(wh, "routes", run_id).drop(columns=["run_id"])
    stops = read_run_rows(wh, "route_stops", run_id).drop(columns=["run_id"])
    stores, dcs = read_table(wh, "stores"), read_table(wh, "distribution_centers")

    geojson = routes_geojson(artifacts_dir, stores, dcs, run["run_date"])
    paths = {"geojson": artifacts_dir / "routes.geojson", "plan": artifacts_dir / "plan.json",
             "report": artifacts_dir / "report.html", "summary": artifacts_dir / "summary.json"}
    paths["geojson"].write_text(json.dumps(geojson), encoding="utf-8")
    plan = {"run_id": run_id, "run_date": str(run["run_date"]), "kpis": kpis,
            "transfers": _records(transfers), "replenishment_orders": _records(orders),
            "routes": _records(routes), "route_stops": _records(stops)}
    paths["plan"].write_text(json.dumps(plan, indent=1), encoding="utf-8")
    paths["report"].write_text(render_report(wh, run, kpis, timings, geojson=geojson), encoding="utf-8")
    summary = {"run_id": run_id, "run_date": str(run["run_date"]), "status": "COMPLETE", "kpis": kpis,
               "timings_s": timings, "artifacts": {k: str(v) for k, v in paths.items() if k != "summary"}}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return paths
