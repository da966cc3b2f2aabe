"""BigQuery ML engine: ARIMA_PLUS statements from `sql/forecasting/`, run by a BigQuery client.

Models are versioned by training date (`demand_arima_YYYYMMDD`, `demand_arima_xreg_YYYYMMDD`);
training (weekly) and forecasting (daily, from the newest model trained on or before the run
date) are separate calls. Every value is a query parameter; the few OPTIONS that BigQuery only
accepts as literals (horizon, holiday region) and the model name come from validated settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from google.cloud import bigquery
from scipy import stats

from retailopt import sqlfiles
from retailopt.config import ConfigError, Settings
from retailopt.warehouse.bigquery import query_parameters

from .components import COMPONENT_COLUMNS
from .distributions import QUANTILES
from .engine import DAILY_COLUMNS, PROTECTION_COLUMNS, ForecastResult

MODEL_PREFIX = "demand_arima_"
_MODEL_RE = re.compile(r"^demand_arima_(xreg_)?(\d{8})$")
_TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
# Values BigQuery ML accepts for holiday_region (documented list; an unknown region fails training).
HOLIDAY_REGIONS = frozenset(
    "GLOBAL NA JAPAC EMEA LAC AE AR AT AU BE BR CA CH CL CN CO CZ DE DK DZ EC EE EG ES FI FR GB GR "
    "HK HU ID IE IL IN IR IT JP KR LV MA MX MY NG NL NO NZ PE PH PK PL PT RO RS RU SA SE SG SI SK TH "
    "TR TW UA US VE VN ZA".split())
DIAGNOSTIC_COLUMNS = ["model_name", "trained_on", "store_id", "product_id", "engine", "model",
                      "demand_class", "non_seasonal_p", "non_seasonal_d", "non_seasonal_q",
                      "has_drift", "log_likelihood", "aic", "variance", "seasonal_periods",
                      "has_holiday_effect", "has_spikes_and_dips", "has_step_changes",
                      "smoothing_parameter", "dispersion", "error_message"]


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict[str, Any]


def model_name(trained_on: date, *, xreg: bool = False) -> str:
    return f"{MODEL_PREFIX}{'xreg_' if xreg else ''}{trained_on:%Y%m%d}"


def parse_model_name(name: str) -> tuple[date, bool] | None:
    """(training date, xreg) of a model name made by `model_name`, else None."""
    m = _MODEL_RE.match(name)
    if not m:
        return None
    return datetime.strptime(m.group(2), "%Y%m%d").date(), bool(m.group(1))


def holiday_region(settings: Settings) -> str:
    region = (settings.holiday_country or "GLOBAL").upper()
    if region not in HOLIDAY_REGIONS:
        raise ConfigError(f"invalid setting holiday_country={settings.holiday_country!r}: "
                          "not a BigQuery ML holiday_region")
    return region


def _check_model(name: str) -> str:
    if not _MODEL_RE.match(name):
        raise ConfigError(f"invalid model name {name!r}: expected {MODEL_PREFIX}[xreg_]YYYYMMDD")
    return name


def _render(settings: Settings, path: str, **names: str) -> str:
    text = sqlfiles.read_sql(path)
    for key, value in names.items():
        text = text.replace("{" + key + "}", value)
    return sqlfiles.render(text, settings.dataset, settings.project)


def create_model_statement(settings: Settings, trained_on: date, *, xreg: bool = False) -> Statement:
    horizon = int(settings.horizon_days)
    if not 1 <= horizon <= 10000:
        raise ConfigError(f"invalid setting horizon_days={horizon}")
    sql = _render(settings, "forecasting/create_model_xreg.sql" if xreg else "forecasting/create_model.sql",
                  model=model_name(trained_on, xreg=xreg), horizon=str(horizon),
                  holiday_region=holiday_region(settings))
    return Statement(sql, {"train_end": trained_on, "history_days": int(settings.history_days)})


def forecast_statement(settings: Settings, model: str, forecast_start: date,
                       features_table: str | None = None) -> Statement:
    params = {"horizon": int(settings.horizon_days), "confidence_level": float(settings.confidence_level)}
    if parse_model_name(_check_model(model))[1]:
        if features_table is None or not _TABLE_RE.match(features_table):
            raise ConfigError(f"invalid features table {features_table!r} for model {model}")
        params["forecast_start"] = forecast_start
        return Statement(_render(settings, "forecasting/forecast_xreg.sql", model=model,
                                 features=features_table), params)
    return Statement(_render(settings, "forecasting/forecast.sql", model=model), params)


def explain_statement(settings: Settings, model: str, forecast_start: date, history_days: int = 91) -> Statement:
    return Statement(_render(settings, "forecasting/explain_forecast.sql", model=_check_model(model)),
                     {"horizon": int(settings.horizon_days), "confidence_level": float(settings.confidence_level),
                      "forecast_start": forecast_start, "history_days": int(history_days)})


def evaluate_statement(settings: Settings, model: str) -> Statement:
    return Statement(_render(settings, "forecasting/arima_evaluate.sql", model=_check_model(model)), {})


def run(client: bigquery.Client, statement: Statement) -> pd.DataFrame:
    config = bigquery.QueryJobConfig(query_parameters=query_parameters(statement.params))
    rows = client.query(statement.sql, job_config=config).result()
    columns = [field.name for field in rows.schema] if rows.schema else []
    return pd.DataFrame([dict(row.items()) for row in rows], columns=columns)


# --------------------------------------------------------------------------- training

def train(client: bigquery.Client, settings: Settings, trained_on: date, *, xreg: bool = False) -> str:
    """Train (weekly trigger) the model version of `trained_on`; returns its name."""
    run(client, create_model_statement(settings, trained_on, xreg=xreg))
    return model_name(trained_on, xreg=xreg)


def latest_model(client: bigquery.Client, settings: Settings, as_of: date, *, xreg: bool = False) -> str | None:
    """Newest model version trained on or before `as_of`."""
    dataset = f"{settings.project}.{settings.dataset}" if settings.project else settings.dataset
    best: tuple[date, str] | None = None
    for model in client.list_models(dataset):
        parsed = parse_model_name(model.model_id)
        if parsed and parsed[1] == xreg and parsed[0] <= as_of and (best is None or parsed[0] > best[0]):
            best = (parsed[0], model.model_id)
    return best[1] if best else None


def forecast_bigquery(client: bigquery.Client, settings: Settings, *, forecast_start: date,
                      window_days: pd.DataFrame, model: str | None = None,
                      features_table: str | None = None, component_days: int = 0) -> ForecastResult:
    """Daily forecasts and window demand from the newest model (daily trigger); with
    ``component_days`` > 0 also ML.EXPLAIN_FORECAST's decomposition of that many days of
    history and of the forecast (``components``)."""
    model = model or latest_model(client, settings, forecast_start, xreg=features_table is not None)
    if model is None:
        raise LookupError(f"no {MODEL_PREFIX}* model trained on or before {forecast_start}; run training first")
    rows = run(client, forecast_statement(settings, model, forecast_start, features_table))
    daily = read_forecast_rows(rows, model=model)
    daily = daily[daily["forecast_date"] >= pd.Timestamp(forecast_start)].reset_index(drop=True)
    protection = protection_from_daily(daily, window_days)
    series = daily.groupby(["store_id", "product_id"], as_index=False).agg(model=("model", "first"))
    series["fallback_reason"] = None
    if component_days > 0:
        components = read_component_rows(
            run(client, explain_statement(settings, model, forecast_start, component_days)), model=model)
    else:
        components = pd.DataFrame(columns=COMPONENT_COLUMNS)
    return ForecastResult(daily=daily, protection=protection, series=series, components=components)


# --------------------------------------------------------------------------- reading results

def read_forecast_rows(rows: pd.DataFrame, *, model: str) -> pd.DataFrame:
    """ML.FORECAST rows -> `forecasts` columns (without run_id).

    Counts cannot be negative, so the mean and every bound are clipped at zero here (the model
    is trained without forecast_limit_lower_bound so zero days stay in training). Quantiles come
    from the normal predictive distribution ARIMA_PLUS reports (forecast_value, standard_error).
    """
    need = ["store_id", "product_id", "forecast_timestamp", "forecast_value", "standard_error",
            "confidence_level", "prediction_interval_lower_bound", "prediction_interval_upper_bound"]
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise ValueError(f"ML.FORECAST rows: missing column(s) {missing}")
    value = rows["forecast_value"].to_numpy(dtype=float)
    se = np.maximum(rows["standard_error"].to_numpy(dtype=float), 0.0)
    ts = pd.to_datetime(rows["forecast_timestamp"], utc=True)
    out = pd.DataFrame({
        "store_id": rows["store_id"].astype(str).to_numpy(),
        "product_id": rows["product_id"].astype(str).to_numpy(),
        "forecast_date": ts.dt.tz_localize(None).dt.normalize().to_numpy(),
        "forecast_mean": np.maximum(value, 0.0),
        "standard_error": se,
        "confidence_level": rows["confidence_level"].to_numpy(dtype=float),
        "lower_bound": np.maximum(rows["prediction_interval_lower_bound"].to_numpy(dtype=float), 0.0),
        "upper_bound": np.maximum(rows["prediction_interval_upper_bound"].to_numpy(dtype=float), 0.0),
    })
    for level in QUANTILES:
        out[f"quantile_{int(round(level * 100))}"] = np.maximum(value + stats.norm.ppf(level) * se, 0.0)
    out["model"] = model
    out["fallback_reason"] = None
    return out.loc[:, DAILY_COLUMNS].sort_values(["store_id", "product_id", "forecast_date"]).reset_index(drop=True)


def protection_from_daily(daily: pd.DataFrame, window_days: pd.DataFrame) -> pd.DataFrame:
    """Window demand from daily means and standard errors (normal, clipped at zero).

    ARIMA errors at different horizons are positively correlated but ML.FORECAST gives no
    covariance, so the window variance is the mean of the independent (sum of variances) and
    fully correlated (square of summed errors) cases. Windows longer than the forecast horizon
    repeat its last day.
    """
    w = window_days.loc[:, ["store_id", "product_id", "window_days"]].astype(
        {"store_id": str, "product_id": str})
    rows = []
    for (store, product), g in daily.sort_values("forecast_date").groupby(["store_id", "product_id"], sort=False):
        match = w[(w.store_id == store) & (w.product_id == product)]
        if match.empty:
            continue
        n = int(match.window_days.iloc[-1])
        mean = g["forecast_mean"].to_numpy(dtype=float)
        se = g["standard_error"].to_numpy(dtype=float)
        if n > len(mean):
            mean = np.concatenate([mean, np.repeat(mean[-1:], n - len(mean))])
            se = np.concatenate([se, np.repeat(se[-1:], n - len(se))])
        m, s = mean[:n].sum(), se[:n]
        sd = float(np.sqrt(0.5 * (s ** 2).sum() + 0.5 * s.sum() ** 2))
        qs = {f"q{int(round(q * 100))}": max(m + stats.norm.ppf(q) * sd, 0.0) for q in QUANTILES}
        rows.append({"store_id": store, "product_id": product, "window_days": n, "demand_mean": m,
                     "demand_std": sd, **qs, "model": g["model"].iloc[0]})
    return pd.DataFrame(rows, columns=PROTECTION_COLUMNS)


def read_component_rows(rows: pd.DataFrame, *, model: str) -> pd.DataFrame:
    """ML.EXPLAIN_FORECAST rows -> `forecast_components` columns (without run_id)."""
    ts = pd.to_datetime(rows["time_series_timestamp"], utc=True)
    is_forecast = rows["time_series_type"].astype(str).to_numpy() == "forecast"
    data = rows["time_series_data"].to_numpy(dtype=float)

    def col(name: str) -> np.ndarray:
        return rows[name].to_numpy(dtype=float) if name in rows.columns else np.full(len(rows), np.nan)

    out = pd.DataFrame({
        "store_id": rows["store_id"].astype(str).to_numpy(),
        "product_id": rows["product_id"].astype(str).to_numpy(),
        "component_date": ts.dt.tz_localize(None).dt.normalize().to_numpy(),
        "time_series_type": rows["time_series_type"].astype(str).to_numpy(),
        "actual": np.where(is_forecast, np.nan, data),
        "adjusted": col("time_series_adjusted_data"),
        "forecast_value": np.where(is_forecast, np.maximum(data, 0.0), np.nan),
        "trend": col("trend"),
        "seasonal_weekly": col("seasonal_period_weekly"),
        "seasonal_yearly": col("seasonal_period_yearly"),
        "holiday_effect": col("holiday_effect"),
        "spikes_and_dips": col("spikes_and_dips"),
        "step_changes": col("step_changes"),
        "residual": col("residual"),
        "model": model,
    })
    return out.loc[:, COMPONENT_COLUMNS]


def read_evaluate_rows(rows: pd.DataFrame, *, model: str) -> pd.DataFrame:
    """ML.ARIMA_EVALUATE rows -> `model_diagnostics` columns."""
    parsed = parse_model_name(_check_model(model))
    out = pd.DataFrame({
        "model_name": model,
        "trained_on": pd.Timestamp(parsed[0]),
        "store_id": rows["store_id"].astype(str).to_numpy(),
        "product_id": rows["product_id"].astype(str).to_numpy(),
        "engine": "bigquery_ml",
    })
    p, d, q = (rows[c].astype("Int64") for c in ("non_seasonal_p", "non_seasonal_d", "non_seasonal_q"))
    out["model"] = ["ARIMA(%s,%s,%s)" % t if not any(pd.isna(v) for v in t) else "ARIMA" for t in zip(p, d, q)]
    out["demand_class"] = None
    out["non_seasonal_p"], out["non_seasonal_d"], out["non_seasonal_q"] = p.to_numpy(), d.to_numpy(), q.to_numpy()
    out["has_drift"] = rows["has_drift"].astype("boolean").to_numpy()
    out["log_likelihood"] = rows["log_likelihood"].astype(float).to_numpy()
    out["aic"] = rows["AIC"].astype(float).to_numpy()
    out["variance"] = rows["variance"].astype(float).to_numpy()
    out["seasonal_periods"] = [",".join(v) if isinstance(v, (list, tuple, np.ndarray)) else v
                               for v in rows["seasonal_periods"]]
    for c in ("has_holiday_effect", "has_spikes_and_dips", "has_step_changes"):
        out[c] = rows[c].astype("boolean").to_numpy()
    out["smoothing_parameter"] = np.nan
    out["dispersion"] = np.nan
    out["error_message"] = rows["error_message"].to_numpy() if "error_message" in rows else None
    return out.loc[:, DIAGNOSTIC_COLUMNS]


def local_diagnostics(series: pd.DataFrame, *, trained_on: date, model_name_: str = "local") -> pd.DataFrame:
    """The local engine's per-series fit (ForecastResult.series) as `model_diagnostics` rows."""
    out = pd.DataFrame({
        "model_name": model_name_, "trained_on": pd.Timestamp(trained_on),
        "store_id": series["store_id"].to_numpy(), "product_id": series["product_id"].to_numpy(),
        "engine": "local", "model": series["model"].to_numpy(),
        "demand_class": series["demand_class"].to_numpy(),
    })
    for c in ("non_seasonal_p", "non_seasonal_d", "non_seasonal_q"):
        out[c] = pd.array([pd.NA] * len(out), dtype="Int64")
    for c in ("has_drift", "has_holiday_effect", "has_spikes_and_dips", "has_step_changes"):
        out[c] = pd.array([pd.NA] * len(out), dtype="boolean")
    out["has_spikes_and_dips"] = (series["n_spikes"].to_numpy() + series["n_dip_days"].to_numpy()) > 0
    for c in ("log_likelihood", "aic", "variance"):
        out[c] = np.nan
    out["seasonal_periods"] = "WEEKLY"
    out["smoothing_parameter"] = series["param"].to_numpy()
    out["dispersion"] = series["dispersion"].to_numpy()
    out["error_message"] = series["fallback_reason"].to_numpy()
    return out.loc[:, DIAGNOSTIC_COLUMNS]
