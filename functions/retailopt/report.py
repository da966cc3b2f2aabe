"""A run's artifacts: plan JSON, routes GeoJSON, a self-contained HTML report and a summary JSON."""

from __future__ import annotations

import base64
import html
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


def _table(frame: pd.DataFrame, limit: int = 50) -> str:
    if frame.empty:
        return "<p><em>None.</em></p>"
    shown = frame.head(limit)
    more = f"<p>{len(frame) - limit} more rows in the warehouse.</p>" if len(frame) > limit else ""
    return shown.to_html(index=False, float_format=lambda v: f"{v:,.2f}", border=0, classes="t",
                         escape=True) + more


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


def _map(stores: pd.DataFrame, dcs: pd.DataFrame, policy: pd.DataFrame, geojson: dict) -> str:
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    risk = policy[policy.status == "STOCKOUT_RISK"].groupby("store_id").size()
    sizes = 20 + 4 * stores.store_id.map(risk).fillna(0).to_numpy()
    ax.scatter(stores.longitude, stores.latitude, s=sizes, c="#4a7ab5", alpha=0.7, label="store (size: positions at risk)")
    for row in stores.itertuples():
        ax.annotate(row.store_id, (row.longitude, row.latitude), fontsize=6, xytext=(3, 3), textcoords="offset points")
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


def _forecast_charts(wh: Warehouse, run: dict, policy: pd.DataFrame) -> list[tuple[str, str]]:
    at_risk = policy[policy.status == "STOCKOUT_RISK"].nlargest(CHARTS, "expected_lost_units")
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
        fig, ax = plt.subplots(figsize=(6.2, 2.6))
        ax.plot(units.index, units.to_numpy(dtype=float), color="#555", linewidth=1, label="sales")
        dates = pd.to_datetime(forecast.forecast_date)
        ax.plot(dates, forecast.forecast_mean, color="#1f77b4", label="forecast")
        ax.fill_between(dates, forecast.lower_bound.astype(float), forecast.upper_bound.astype(float),
                        color="#1f77b4", alpha=0.2, label="interval")
        ax.axhline(0, color="#ccc", linewidth=0.5)
        ax.set_title(f"{row.store_id} / {row.product_id}: on hand {row.on_hand}, reorder point "
                     f"{row.reorder_point:.0f}", fontsize=9)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
        charts.append((f"{row.store_id} / {row.product_id}", _image(fig)))
    return charts


_STRATEGY_LABELS = {"dc_only": "(a) no rebalancing", "min_max": "(b) min/max rule",
                    "policy_rebalance": "(c) this policy + rebalancing"}


def _replay_section(wh: Warehouse) -> str:
    replay = wh.query(
        "SELECT replay_id, strategy, start_date, end_date, days, replan_every_days, forecaster, fill_rate, "
        "cycle_service_level, lost_units, avg_on_hand_units, avg_on_hand_value, units_moved, trips, "
        "transfer_cost, ordering_cost, holding_cost, lost_sales_cost, operating_cost, total_cost "
        "FROM `{dataset}.replay_results` "
        "WHERE replay_id = (SELECT replay_id FROM `{dataset}.replay_results` ORDER BY created_at DESC LIMIT 1)")
    if replay.empty:
        return "<p><em>No replay yet: run <code>retailopt replay</code> to compare policies on held-out demand.</em></p>"
    first = replay.iloc[0]
    order = {name: i for i, name in enumerate(_STRATEGY_LABELS)}
    replay = replay.assign(_o=replay["strategy"].map(order).fillna(len(order))).sort_values("_o")
    # The measures that decide, under short headings so the table fits the page; every column is
    # in the table replay_results.
    columns = {"strategy": "strategy", "fill_rate": "fill rate", "cycle_service_level": "cycle service level",
               "lost_units": "lost units", "avg_on_hand_units": "avg on hand", "avg_on_hand_value": "on hand value",
               "units_moved": "units moved", "trips": "trips", "transfer_cost": "transfer cost",
               "operating_cost": "operating cost", "lost_sales_cost": "lost margin", "total_cost": "total cost"}
    shown = replay[list(columns)].rename(columns=columns)
    shown["strategy"] = shown["strategy"].map(lambda v: _STRATEGY_LABELS.get(v, v))
    for col in shown.columns[1:]:
        if col in ("fill rate", "cycle service level"):
            shown[col] = shown[col].map(lambda v: f"{v:.3f}")
        else:
            shown[col] = shown[col].map(lambda v: f"{v:,.0f}")
    start, end = (pd.Timestamp(first[c]).date().isoformat() for c in ("start_date", "end_date"))
    caption = (f"<p>Held-out demand {start} to {end} "
               f"({int(first['days'])} days) replayed day by day from the same starting stock, re-planning every "
               f"{int(first['replan_every_days'])} days with lead times and lost sales; forecasts use only the days "
               f"before each re-plan. Operating cost = holding + ordering + transfer cost; total cost adds the lost "
               f"margin. Replay <code>{html.escape(str(first['replay_id']))}</code>; every measure is in the table "
               f"<code>replay_results</code>.</p>")
    return caption + _table(shown)


ANOMALY_EPISODES = 15  # rows of the report's anomaly table


def _anomaly_section(wh: Warehouse, run: dict) -> str:
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
        return "<p><em>No sales anomalies recorded for this run (table <code>sales_anomalies</code>).</em></p>"
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
    shown = pd.DataFrame({
        # Names from the input files; _table escapes every cell.
        "store": episodes["store"].fillna(episodes["store_id"]),
        "product": episodes["product"].fillna(episodes["product_id"]),
        "kind": episodes["kind"],
        "from": episodes["first_day"].dt.date.astype(str),
        "to": episodes["last_day"].dt.date.astype(str),
        "days": episodes["days"],
        "units": episodes["units"].map(lambda v: f"{v:,.0f}"),
        "expected": episodes["expected"].map(lambda v: f"{v:,.1f}"),
        "anomaly probability": episodes["probability"].map(lambda v: f"{v:.4f}"),
        "on promotion": episodes["promotion"].map({True: "yes", False: ""}),
        "left out of the fit": episodes["left_out"].map({True: "yes", False: ""}),
    })
    spikes = int((rows["kind"] == "spike").sum())
    excluded = int(rows["excluded_from_training"].sum())
    methods = ", ".join(sorted(str(m) for m in rows["method"].unique()))
    caption = (f"<p>{len(rows)} store × product days outside the forecast's 99% interval in the days before "
               f"the run ({spikes} spikes, {len(rows) - spikes} dips; method {html.escape(methods)}); "
               f"{excluded} of them, isolated spikes, were fitted at their expected units (setting "
               "<code>exclude_anomalies</code>). Consecutive days of one kind are one row, those without a "
               f"promotion first: {len(episodes)} of {n_episodes} shown. Every day is in the table "
               "<code>sales_anomalies</code> and the view <code>sales_anomalies_recent</code>.</p>")
    return caption + _table(shown, ANOMALY_EPISODES)


def refresh_report(wh: Warehouse, run_id: str, artifacts_dir: Path) -> Path:
    """Write a COMPLETE run's artifacts again from the warehouse (e.g. once a replay finished)."""
    from retailopt.pipeline import get_run

    run = get_run(wh, run_id)
    if run is None or run.get("status") != "COMPLETE":
        raise ValueError(f"run {run_id} is not a COMPLETE run")
    return write_artifacts(wh, run, run.get("kpis") or {}, run.get("timings") or {}, artifacts_dir)["report"]


_STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table.t{border-collapse:collapse;font-size:12px}table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right}table.t th{background:#f4f4f4}.grid{display:flex;flex-wrap:wrap;gap:8px}img{max-width:100%}"""


def render_html(run: dict, kpis: dict, timings: dict, sections: dict[str, str]) -> str:
    kpi_rows = pd.DataFrame({"figure": list(kpis), "value": [kpis[k] for k in kpis]})
    time_rows = pd.DataFrame({"step": list(timings), "seconds": [timings[k] for k in timings]})
    body = [f"<h1>Planning run {html.escape(run['run_id'])}</h1>",
            f"<p>Run date {run['run_date']}. Status COMPLETE. Figures below are from the warehouse.</p>",
            "<h2>Key figures</h2>", _table(kpi_rows, 100), "<h2>Step timings</h2>", _table(time_rows, 100)]
    for title, content in sections.items():
        body += [f"<h2>{html.escape(title)}</h2>", content]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Run {html.escape(run['run_id'])}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>")


def write_artifacts(wh: Warehouse, run: dict, kpis: dict, timings: dict, artifacts_dir: Path) -> dict[str, Path]:
    """The run's workbench tables (written again unless the run is COMPLETE already), then its files."""
    from retailopt.pipeline import read_run_rows, read_table
    from retailopt.workbench import store

    run_id = run["run_id"]
    store.publish(wh, run_id, pd.Timestamp(run["run_date"]).date(), replace=run.get("status") != "COMPLETE")
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    policy = read_run_rows(wh, "inventory_policy", run_id)
    transfers = read_run_rows(wh, "transfers", run_id).drop(columns=["run_id"])
    orders = read_run_rows(wh, "replenishment_orders", run_id).drop(columns=["run_id"])
    routes = read_run_rows(wh, "routes", run_id).drop(columns=["run_id"])
    stops = read_run_rows(wh, "route_stops", run_id).drop(columns=["run_id"])
    quarantine = read_run_rows(wh, "quarantine", run_id).drop(columns=["run_id"])
    stores, dcs = read_table(wh, "stores"), read_table(wh, "distribution_centers")

    geojson = routes_geojson(artifacts_dir, stores, dcs, run["run_date"])
    paths = {"geojson": artifacts_dir / "routes.geojson", "plan": artifacts_dir / "plan.json",
             "report": artifacts_dir / "report.html", "summary": artifacts_dir / "summary.json"}
    paths["geojson"].write_text(json.dumps(geojson), encoding="utf-8")
    plan = {"run_id": run_id, "run_date": str(run["run_date"]), "kpis": kpis,
            "transfers": _records(transfers), "replenishment_orders": _records(orders),
            "routes": _records(routes), "route_stops": _records(stops)}
    paths["plan"].write_text(json.dumps(plan, indent=1), encoding="utf-8")

    status = policy.groupby(["status", "status_after_plan"]).size().rename("positions").reset_index()
    charts = _forecast_charts(wh, run, policy)
    sections = {
        "Map of the routes": f"<img alt='map' src='{_map(stores, dcs, policy, geojson)}'>",
        "Routes": _table(routes),
        "Transfers between stores (largest value first)": _table(transfers.sort_values("value", ascending=False)),
        "Replenishment orders from the distribution centre": _table(
            orders.sort_values("order_value", ascending=False)),
        "Inventory status before and after the plan": _table(status),
        "Forecasts for the positions most at risk": "<div class='grid'>" + "".join(
            f"<img alt='{html.escape(t)}' src='{src}'>" for t, src in charts) + "</div>",
        "Sales anomalies before the run": _anomaly_section(wh, run),
        "Quarantined input rows": _table(quarantine),
        "Replay on held-out demand: this policy against simple rules": _replay_section(wh),
    }
    paths["report"].write_text(render_html(run, kpis, timings, sections), encoding="utf-8")
    summary = {"run_id": run_id, "run_date": str(run["run_date"]), "status": "COMPLETE", "kpis": kpis,
               "timings_s": timings, "artifacts": {k: str(v) for k, v in paths.items() if k != "summary"}}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return paths
