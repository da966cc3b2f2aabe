"""`retailopt bench-forecast`: the local engine against statsforecast baselines.

Suites (one run, same data for every method):
- ``chain``: the generated sample chain (``retailopt.sample.generate_sample_chain``), last
  ``--horizon`` days held out. The engine forecasts every series; the slow baselines
  (AutoARIMA, AutoETS, SeasonalNaive with weekly season) run on a random subset of
  ``--baseline-series`` series, and the engine's accuracy is also shown on that same subset.
  A second engine run is told the promotions planned for the held-out days
  (``local_engine+planned_promotions``; the baselines get no such input).
- ``m5``: the ten real M5 series in /work/shared/benchmarks/m5_sample (train d_1..d_1913, score
  the 28 actual days, calendar events as holidays).
- ``scale``: ``--scale N`` synthetic series of two years, engine only: series/s and peak RSS.

Accuracy: RMSSE averaged over series (M5 scaling), WAPE, and the share of actual days inside
each method's 80% and 95% intervals (the engine's calibrated ones). Speed: series per second (single process) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from retailopt.forecasting.engine import forecast
from retailopt.forecasting.metrics import bias_by_sales_level, naive_scales
from retailopt.forecasting.synthetic import matrix_to_history, synthetic_matrix

M5_DIR = Path("/work/shared/benchmarks/m5_sample")
# Real weekly and monthly series (../shared/benchmarks/weekly_monthly from the project root; its
# README describes them): file, horizon (the data's usual one) and the holiday calendar.
WEEKLY_MONTHLY_DIR = Path("/work/shared/benchmarks/weekly_monthly")
PERIODIC_SETS = {
    "weekly": (("m4_weekly.csv", 13, None), ("bike_sales_weekly.csv", 13, "US")),
    "monthly": (("pbs_monthly_scripts.csv", 24, "AU"), ("m4_monthly.csv", 18, None)),
}
SEASON = {"weekly": 52, "monthly": 12}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _score(actual: np.ndarray, train: np.ndarray, mean: np.ndarray, lo80: np.ndarray, hi80: np.ndarray,
           lo95: np.ndarray, hi95: np.ndarray, first: np.ndarray | None = None,
           by_level: bool = False) -> dict:
    mae, mse = naive_scales(train, first)
    ok = mse > 0
    rmsse = np.sqrt(((mean - actual) ** 2).mean(axis=1)[ok] / mse[ok])
    mase = np.abs(mean - actual).mean(axis=1)[ok] / mae[ok]
    scores = {
        "rmsse": float(rmsse.mean()),
        "mase": float(mase.mean()),
        "wape": float(np.abs(mean - actual).sum() / max(actual.sum(), 1e-9)),
        "bias": float((mean - actual).sum() / max(actual.sum(), 1e-9)),
        "coverage_80": float(((actual >= lo80) & (actual <= hi80)).mean()),
        "coverage_95": float(((actual >= lo95) & (actual <= hi95)).mean()),
        "n_series": int(len(actual)),
    }
    if by_level:  # daily series: by trailing 28-day sales, not by forecast (see metrics.py)
        scores["bias_by_sales_level"] = bias_by_sales_level(actual, mean, train)
    return scores


def run_engine(keys: pd.DataFrame, days: pd.DatetimeIndex, train: np.ndarray, promo: np.ndarray | None,
               horizon: int, holidays: pd.DataFrame | None = None,
               holiday_country: str | None = "US",
               planned_promo: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], float]:
    hist = matrix_to_history(keys, days, train, promo)
    start = (days[-1] + pd.Timedelta(days=1)).date()
    plan = None
    if planned_promo is not None:
        si, di = np.nonzero(planned_promo)
        plan = pd.DataFrame({"store_id": keys["store_id"].to_numpy()[si], "product_id": keys["product_id"].to_numpy()[si],
                             "sale_date": pd.date_range(start, periods=horizon)[di], "on_promotion": True})
    t0 = time.perf_counter()
    res = forecast(hist, keys, forecast_start=start, horizon=horizon,
                   window_days=keys.assign(window_days=horizon), holidays=holidays,
                   holiday_country=holiday_country, future_promotions=plan)
    seconds = time.perf_counter() - t0
    n = len(keys)
    mean = res.daily["forecast_mean"].to_numpy().reshape(n, horizon)
    # The engine's calibrated intervals (what it writes as lower/upper_bound at that level).
    (lo80, hi80), (lo95, hi95) = (res.interval(level) for level in (0.8, 0.95))
    return {"mean": mean, "lo80": lo80.reshape(n, horizon), "hi80": hi80.reshape(n, horizon),
            "lo95": lo95.reshape(n, horizon), "hi95": hi95.reshape(n, horizon),
            "models": res.series["model"].to_numpy()}, seconds


def run_baseline(name: str, train: np.ndarray, days: pd.DatetimeIndex, horizon: int) -> tuple[dict, float]:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    model = {"AutoARIMA": lambda: AutoARIMA(season_length=7),
             "AutoETS": lambda: AutoETS(season_length=7),
             "SeasonalNaive": lambda: SeasonalNaive(season_length=7)}[name]()
    n, t = train.shape
    # Each series from its first sale, as the engine sees it (leading zeros are not history).
    frames = []
    for i in range(n):
        nz = np.flatnonzero(train[i] > 0)
        s = nz[0] if nz.size and t - nz[0] >= 2 * 7 else max(t - 14, 0)
        frames.append(pd.DataFrame({"unique_id": i, "ds": days[s:], "y": train[i, s:]}))
    df = pd.concat(frames, ignore_index=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = StatsForecast(models=[model], freq="D", n_jobs=1).forecast(df=df, h=horizon, level=[80, 95])
    seconds = time.perf_counter() - t0
    fc = fc.sort_values(["unique_id", "ds"])
    col = [c for c in fc.columns if c not in ("unique_id", "ds") and "-lo-" not in c and "-hi-" not in c][0]

    def get(c: str) -> np.ndarray:
        return np.maximum(fc[c].to_numpy(dtype=float).reshape(n, horizon), 0.0)

    return {"mean": get(col), "lo80": get(f"{col}-lo-80"), "hi80": get(f"{col}-hi-80"),
            "lo95": get(f"{col}-lo-95"), "hi95": get(f"{col}-hi-95")}, seconds


def _row(suite: str, method: str, scores: dict, seconds: float, n_fit: int, note: str = "") -> dict:
    return {"suite": suite, "method": method, **scores, "seconds": round(seconds, 3),
            "series_per_s": round(n_fit / seconds, 2) if seconds > 0 else None,
            "peak_rss_mb": round(_peak_rss_mb(), 1), "note": note}


def chain_suite(args: argparse.Namespace) -> list[dict]:
    h = args.horizon
    try:
        from retailopt.sample import generate_sample_chain
    except ImportError:
        generate_sample_chain = None
    if generate_sample_chain is not None:
        with tempfile.TemporaryDirectory() as tmp:
            paths = generate_sample_chain(Path(tmp), seed=args.seed, days=args.days + h)
            sales = pd.read_parquet(paths["sales"])
        sales["sale_date"] = pd.to_datetime(sales["sale_date"])
        keys = sales[["store_id", "product_id"]].drop_duplicates().sort_values(
            ["store_id", "product_id"]).reset_index(drop=True)
        days = pd.date_range(sales["sale_date"].min(), sales["sale_date"].max(), freq="D")
        idx = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(sales[["store_id", "product_id"]]))
        di = (sales["sale_date"] - days[0]).dt.days.to_numpy()
        units = np.zeros((len(keys), len(days)))
        promo = np.zeros((len(keys), len(days)), dtype=bool)
        np.add.at(units, (idx, di), sales["units"].to_numpy(dtype=float))
        promo[idx, di] = sales["on_promotion"].to_numpy(dtype=bool)
        source = "retailopt.sample.generate_sample_chain"
    else:
        keys, days, units, promo = synthetic_matrix(7500, args.days + h, date(2025, 6, 30), seed=args.seed)
        source = "synthetic (forecasting.synthetic)"
    train, actual = units[:, :-h], units[:, -h:]
    tdays = days[:-h]
    rows = []
    out, sec = run_engine(keys, tdays, train, promo[:, :-h], h)
    rows.append(_row("chain", "local_engine", _score(actual, train, out["mean"], out["lo80"], out["hi80"],
                                                     out["lo95"], out["hi95"], by_level=True), sec, len(keys),
                     f"all series, {source}"))
    rng = np.random.default_rng(args.seed)
    subset = np.sort(rng.choice(len(keys), size=min(args.baseline_series, len(keys)), replace=False))
    sub = {k: v[subset] for k, v in out.items() if k != "models"}
    rows.append(_row("chain", "local_engine", _score(actual[subset], train[subset], **sub, by_level=True), sec * len(subset) / len(keys),
                     len(subset), f"same {len(subset)}-series random subset as the baselines (time pro rata)"))
    # The same engine told the promotions planned for the held-out days (as a retailer knows
    # its circulars in advance; the baselines get no such input).
    planned, psec = run_engine(keys, tdays, train, promo[:, :-h], h, planned_promo=promo[:, -h:])
    rows.append(_row("chain", "local_engine+planned_promotions",
                     _score(actual, train, *(planned[k] for k in ("mean", "lo80", "hi80", "lo95", "hi95")), by_level=True),
                     psec, len(keys), "all series, planned promotions of the held-out days given"))
    rows.append(_row("chain", "local_engine+planned_promotions",
                     _score(actual[subset], train[subset], *(planned[k][subset] for k in ("mean", "lo80", "hi80", "lo95", "hi95")),
                            by_level=True),
                     psec * len(subset) / len(keys), len(subset), f"same {len(subset)}-series subset"))
    for name in args.baselines:
        b, bsec = run_baseline(name, train[subset], tdays, h)
        rows.append(_row("chain", name, _score(actual[subset], train[subset], **b, by_level=True), bsec, len(subset),
                         f"random subset of {len(subset)} series, season_length=7"))
    if args.origins > 1:
        rows.append(_origins_row(keys, days, units, promo, h, args.origins))
    return rows


def _origins_row(keys: pd.DataFrame, days: pd.DatetimeIndex, units: np.ndarray, promo: np.ndarray, h: int,
                 n_origins: int) -> dict:
    """Bias by sales level over ``n_origins`` consecutive holdouts of ``h`` days (the last one is
    the suite's): one window's groups move with the season, several average it out. Grouped by
    trailing 28-day sales and, to show the selection effect, by the forecast itself."""
    if units.shape[1] - h * n_origins < 56:  # each origin needs its trailing 28 days and some history
        raise SystemExit(f"bench-forecast: --origins {n_origins} x --horizon {h} leaves less than 56 training "
                         f"days of the {units.shape[1]} (raise --days)")
    actual, mean, trailing, scores = [], [], [], []
    seconds = 0.0
    for k in range(n_origins):
        cut = units.shape[1] - h * (k + 1)
        out, sec = run_engine(keys, days[:cut], units[:, :cut], promo[:, :cut], h)
        seconds += sec
        scores.append(_score(units[:, cut:cut + h], units[:, :cut], out["mean"], out["lo80"], out["hi80"],
                             out["lo95"], out["hi95"]))
        actual.append(units[:, cut:cut + h])
        mean.append(out["mean"])
        trailing.append(units[:, cut - 28:cut])
    actual, mean, trailing = (np.concatenate(a) for a in (actual, mean, trailing))
    # Accuracy averaged over the holdouts (each scaled by its own training data); bias pooled.
    averaged = {k: float(np.mean([sc[k] for sc in scores]))
                for k in ("rmsse", "mase", "wape", "coverage_80", "coverage_95")}
    row = _row("chain", f"local_engine, {n_origins} origins", {
        **averaged, "bias": float((mean - actual).sum() / max(actual.sum(), 1e-9)), "n_series": int(len(actual)),
        "bias_by_sales_level": bias_by_sales_level(actual, mean, trailing),
    }, seconds, len(actual), f"{n_origins} holdouts of {h} days, each ending the day before the next one starts")
    # The same forecasts grouped by their own daily mean: low forecasts look under-forecast here
    # for any forecaster (regression to the mean), which the trailing-sales groups avoid.
    row["bias_by_forecast_level"] = bias_by_sales_level(actual, mean, mean, trailing_days=h)
    return row


def m5_suite(args: argparse.Namespace) -> list[dict]:
    m5 = Path(args.m5_dir)
    wide = pd.read_csv(m5 / "spot_sales_train_validation.csv")
    cal = pd.read_csv(m5 / "spot_calendar.csv", parse_dates=["date"])
    act = pd.read_csv(m5 / "actuals_d1914_d1941.csv").set_index("id").loc[
        wide["id"].str.replace("_validation", "", regex=False)]
    dcols = [c for c in wide.columns if c.startswith("d_")]
    date_of = dict(zip(cal["d"], cal["date"]))
    days = pd.DatetimeIndex([date_of[c] for c in dcols])
    train = wide[dcols].to_numpy(dtype=float)
    actual = act.to_numpy(dtype=float)
    h = actual.shape[1]
    keys = pd.DataFrame({"store_id": wide["store_id"].astype(str), "product_id": wide["item_id"].astype(str)})
    events = pd.concat([cal[["date", c]].rename(columns={"date": "holiday_date", c: "holiday_name"})
                        for c in ("event_name_1", "event_name_2")]).dropna()
    rows = []
    out, sec = run_engine(keys, days, train, None, h, holidays=events)
    rows.append(_row("m5", "local_engine", _score(actual, train, out["mean"], out["lo80"], out["hi80"],
                                                  out["lo95"], out["hi95"], by_level=True), sec, len(keys),
                     "10 real M5 series, calendar events as holidays"))
    for name in args.baselines:
        b, bsec = run_baseline(name, train, days, h)
        rows.append(_row("m5", name, _score(actual, train, **b, by_level=True), bsec, len(keys), "season_length=7"))
    return rows


def _load_periodic(path: Path, h: int, shift: int = 0) -> tuple[list[str], list[pd.DatetimeIndex], np.ndarray,
                                                                  np.ndarray]:
    """Series of a long-format file (unique_id, ds, y), right-aligned in one matrix (S, T): ids,
    dates per series, values (zero before a series starts) and each series' start index.
    ``shift`` drops each series' last periods first (an earlier window to hold out)."""
    df = pd.read_csv(path, parse_dates=["ds"]).sort_values(["unique_id", "ds"])
    if shift:
        df = df[df.groupby("unique_id").cumcount(ascending=False) >= shift]
    groups = [(str(k), g) for k, g in df.groupby("unique_id", sort=True)]
    n_t = max(len(g) for _, g in groups)
    y = np.zeros((len(groups), n_t))
    start = np.zeros(len(groups), dtype=int)
    dates = []
    for i, (_, g) in enumerate(groups):
        y[i, n_t - len(g):] = g["y"].to_numpy(dtype=float)
        start[i] = n_t - len(g)
        dates.append(pd.DatetimeIndex(g["ds"]))
        if len(g) <= h:
            raise ValueError(f"{path.name}: series {groups[i][0]} has {len(g)} periods, not more than the horizon {h}")
    return [k for k, _ in groups], dates, y, start


def _periodic_engine(name: str, ids: list[str], dates: list[pd.DatetimeIndex], train: np.ndarray,
                     start: np.ndarray, h: int, country: str | None) -> tuple[dict[str, np.ndarray], float]:
    """The engine on every series, called once per group of series sharing a grid and an end
    (frequency inferred from the dates, as a user without a setting would get)."""
    n, n_t = train.shape
    out = {k: np.zeros((n, h)) for k in ("mean", "lo80", "hi80", "lo95", "hi95")}
    groups: dict[tuple, list[int]] = {}
    for i, d in enumerate(dates):
        groups.setdefault((d[-h - 1], d[-h - 1].dayofweek), []).append(i)
    seconds = 0.0
    for (last, _), rows in groups.items():
        frames = []
        for i in rows:
            d = dates[i][:-h]
            frames.append(pd.DataFrame({"store_id": name, "product_id": ids[i], "sale_date": d,
                                        "units": train[i, n_t - len(d):]}))
        hist = pd.concat(frames, ignore_index=True)
        keys = pd.DataFrame({"store_id": name, "product_id": [ids[i] for i in rows]})
        t0 = time.perf_counter()
        res = forecast(hist, keys, forecast_start=(last + pd.Timedelta(days=1)).date(), horizon=h,
                       window_days=keys.assign(window_days=h), holiday_country=country, frequency=None)
        seconds += time.perf_counter() - t0
        k = len(rows)
        out["mean"][rows] = res.daily["forecast_mean"].to_numpy().reshape(k, h)
        for level, lo, hi in ((0.8, "lo80", "hi80"), (0.95, "lo95", "hi95")):
            a, b = res.interval(level)
            out[lo][rows], out[hi][rows] = a.reshape(k, h), b.reshape(k, h)
    return out, seconds


def _periodic_baseline(model_name: str, train: np.ndarray, start: np.ndarray, h: int,
                       season: int, max_periods: int = 0) -> tuple[dict[str, np.ndarray], float, int]:
    """A statsforecast model on each series from its start (periods numbered, so series on
    different grids run together); a series too short for the model's season gets its last value
    and no interval (counted in the note)."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    model = {"AutoARIMA": AutoARIMA, "AutoETS": AutoETS, "SeasonalNaive": SeasonalNaive}[model_name](
        season_length=season)
    n = len(train)
    if max_periods:  # only the last max_periods periods of each series
        start = np.maximum(start, train.shape[1] - max_periods)
    df = pd.concat([pd.DataFrame({"unique_id": i, "ds": np.arange(train.shape[1] - start[i]), "y": train[i, start[i]:]})
                    for i in range(n)], ignore_index=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=df, h=h, level=[80, 95])
    seconds = time.perf_counter() - t0
    fc = fc.sort_values(["unique_id", "ds"])
    col = model_name

    def get(c: str) -> np.ndarray:
        return np.maximum(fc[c].to_numpy(dtype=float).reshape(n, h), 0.0)

    out = {"mean": get(col), "lo80": get(f"{col}-lo-80"), "hi80": get(f"{col}-hi-80"),
           "lo95": get(f"{col}-lo-95"), "hi95": get(f"{col}-hi-95")}
    missing = np.isnan(out["mean"]).any(axis=1)
    if missing.any():
        out["mean"][missing] = train[missing, -1:]
        for k in ("lo80", "hi80", "lo95", "hi95"):
            out[k][missing] = np.nan
    return out, seconds, int(missing.sum())


def periodic_suite(args: argparse.Namespace, kind: str) -> list[dict]:
    """Weekly or monthly real series: the last horizon of each series held out; the engine and
    the statsforecast peers (season 52 or 12) on the same series, per file and for the
    frequency as a whole (RMSSE, MASE averaged over series; WAPE, bias, coverage pooled)."""
    folder = Path(args.weekly_monthly_dir)
    season = SEASON[kind]
    per: dict[str, list[tuple]] = {}
    rows = []
    for fname, h, country in PERIODIC_SETS[kind]:
        path = folder / fname
        if not path.exists():
            raise SystemExit(f"bench-forecast: {path} not found (--weekly-monthly-dir)")
        ids, dates, y, start = _load_periodic(path, h, args.holdout_shift)
        train, actual = y[:, :-h], y[:, -h:]
        stem = path.stem
        out, sec = _periodic_engine(stem, ids, dates, train, start, h, country)
        # The peers (AutoARIMA is slow) on every series, or on a random subset when asked; the
        # engine is then scored on that subset too, and the frequency rows compare the subsets.
        subset = np.arange(len(ids))
        if 0 < args.periodic_baseline_series < len(ids):
            rng = np.random.default_rng(args.seed)
            subset = np.sort(rng.choice(len(ids), size=args.periodic_baseline_series, replace=False))
            scores = _score(actual, train, out["mean"], out["lo80"], out["hi80"], out["lo95"], out["hi95"])
            rows.append(_row(f"{kind}:{stem}", "local_engine", scores, sec, len(ids),
                             f"all {len(ids)} series, h={h}, holidays {country or 'none'}"))
        methods = [("local_engine", {k: v[subset] for k, v in out.items()}, sec * len(subset) / len(ids),
                    f"h={h}, holidays {country or 'none'}" + (
                        f"; the peers' {len(subset)}-series subset (time pro rata)" if len(subset) < len(ids) else ""))]
        for name in args.baselines:
            cap = args.arima_max_periods if name == "AutoARIMA" else 0
            b, bsec, short = _periodic_baseline(name, train[subset], start[subset], h, season, cap)
            longer = int((train.shape[1] - start[subset] > cap).sum()) if cap else 0
            methods.append((name, b, bsec, f"season_length={season}" + (
                f"; the last {cap} periods of the {longer} longer series" if longer else "") + (
                f"; random subset of {len(subset)} series" if len(subset) < len(ids) else "") + (
                f"; {short} series shorter than its needs: last value, no interval" if short else "")))
        for method, res, seconds, note in methods:
            scores = _score(actual[subset], train[subset], res["mean"], res["lo80"], res["hi80"], res["lo95"],
                            res["hi95"])
            rows.append(_row(f"{kind}:{stem}", method, scores, seconds, len(subset), note))
            per.setdefault(method, []).append((actual[subset], train[subset], res, seconds))
    for method, parts in per.items():
        scores = _pooled_scores(parts)
        seconds = sum(p[3] for p in parts)
        rows.append(_row(kind, method, scores, seconds, scores["n_series"],
                         f"all {kind} series ({', '.join(f for f, _, _ in PERIODIC_SETS[kind])})" + (
                             f"; the last {args.holdout_shift} periods dropped" if args.holdout_shift else "")))
    return rows


def _pooled_scores(parts: list[tuple]) -> dict[str, float]:
    """Scores over several files' series: RMSSE and MASE averaged over all series; WAPE, bias and
    coverage pooled over all their periods."""
    rmsse, mase = [], []
    abs_err = err = total = inside80 = inside95 = n = 0.0
    for actual, train, res, _ in parts:
        mae, mse = naive_scales(train)
        ok = mse > 0
        e = res["mean"] - actual
        rmsse.append(np.sqrt((e ** 2).mean(axis=1)[ok] / mse[ok]))
        mase.append(np.abs(e).mean(axis=1)[ok] / mae[ok])
        abs_err += np.abs(e).sum()
        err += e.sum()
        total += actual.sum()
        inside80 += ((actual >= res["lo80"]) & (actual <= res["hi80"])).sum()
        inside95 += ((actual >= res["lo95"]) & (actual <= res["hi95"])).sum()
        n += actual.size
    return {"rmsse": float(np.concatenate(rmsse).mean()), "mase": float(np.concatenate(mase).mean()),
            "wape": float(abs_err / max(total, 1e-9)), "bias": float(err / max(total, 1e-9)),
            "coverage_80": float(inside80 / n), "coverage_95": float(inside95 / n),
            "n_series": int(sum(len(p[0]) for p in parts))}


def scale_suite(args: argparse.Namespace) -> list[dict]:
    h = args.horizon
    keys, days, units, promo = synthetic_matrix(args.scale, args.days + h, date(2025, 6, 30), seed=args.seed,
                                                n_stores=10 if args.scale >= 10000 else 25)
    train, actual = units[:, :-h], units[:, -h:]
    del units
    rss_before = _peak_rss_mb()
    out, sec = run_engine(keys, days[:-h], train, promo[:, :-h], h)
    row = _row("scale", "local_engine", _score(actual, train, out["mean"], out["lo80"], out["hi80"],
                                               out["lo95"], out["hi95"]), sec, len(keys),
               f"{args.scale} synthetic series x {args.days} days; peak RSS before forecasting "
               f"{rss_before:.0f} MB (data)")
    return [row]


def _print(rows: list[dict]) -> None:
    cols = ["suite", "method", "n_series", "rmsse", "mase", "wape", "bias", "coverage_80", "coverage_95", "seconds",
            "series_per_s", "peak_rss_mb", "note"]
    frame = pd.DataFrame(rows).reindex(columns=cols)
    with pd.option_context("display.width", 220, "display.max_colwidth", 90, "display.float_format", "{:.3f}".format):
        print(frame.to_string(index=False))
        levels = pd.DataFrame([{"suite": r["suite"], "method": r["method"], "n_series": r["n_series"],
                                "grouped by": "trailing 28-day sales", **r["bias_by_sales_level"]}
                               for r in rows if r.get("bias_by_sales_level")]
                              + [{"suite": r["suite"], "method": r["method"], "n_series": r["n_series"],
                                  "grouped by": "the forecast itself", **r["bias_by_forecast_level"]}
                                 for r in rows if r.get("bias_by_forecast_level")])
        if len(levels):
            print("bias (forecast - actual) / actual by mean daily sales level:")
            print(levels.to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="retailopt bench-forecast", description=__doc__.split("\n")[0])
    ap.add_argument("--suite", choices=["chain", "m5", "weekly", "monthly", "scale", "daily", "all"],
                    default="all",
                    help="daily = chain + m5; all = chain + m5 + weekly + monthly (+ scale when --scale is given)")
    ap.add_argument("--scale", type=int, default=0, help="number of synthetic series for the scale mode")
    ap.add_argument("--days", type=int, default=730, help="training days (chain and scale)")
    ap.add_argument("--horizon", type=int, default=28)
    ap.add_argument("--baseline-series", type=int, default=200,
                    help="random subset of chain series for the statsforecast baselines")
    ap.add_argument("--baselines", nargs="*", default=["SeasonalNaive", "AutoETS", "AutoARIMA"],
                    choices=["SeasonalNaive", "AutoETS", "AutoARIMA"],
                    help="statsforecast baselines to run (AutoARIMA is slow)")
    ap.add_argument("--m5-dir", default=str(M5_DIR))
    ap.add_argument("--weekly-monthly-dir", default=str(WEEKLY_MONTHLY_DIR),
                    help="the real weekly and monthly series (weekly and monthly suites)")
    ap.add_argument("--arima-max-periods", type=int, default=0,
                    help="weekly/monthly: AutoARIMA fits only the last N periods of a series (0: all; "
                         "a 52-week season on 1,000 weeks takes it tens of minutes)")
    ap.add_argument("--periodic-baseline-series", type=int, default=0,
                    help="weekly/monthly: run the peers on a random subset of this many series per file "
                         "(0: all; AutoARIMA takes seconds to minutes per series)")
    ap.add_argument("--holdout-shift", type=int, default=0,
                    help="weekly/monthly: hold out the horizon ending this many periods before each series' "
                         "end (an earlier window: a design choice should not hold on the last one only)")
    ap.add_argument("--origins", type=int, default=1,
                    help="chain: also score the engine over this many consecutive holdouts (bias by sales "
                         "level over several windows; 1: the single holdout only)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="data/bench/forecast.json")
    args = ap.parse_args(argv)
    rows: list[dict] = []
    if args.suite in ("chain", "daily", "all"):
        rows += chain_suite(args)
    if args.suite in ("m5", "daily", "all"):
        rows += m5_suite(args)
    for kind in ("weekly", "monthly"):
        if args.suite in (kind, "all"):
            rows += periodic_suite(args, kind)
    if args.suite == "scale" or (args.suite == "all" and args.scale):
        if not args.scale:
            ap.error("--suite scale needs --scale N")
        rows += scale_suite(args)
    _print(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"argv": sys.argv[1:] if argv is None else argv, "rows": rows}, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
