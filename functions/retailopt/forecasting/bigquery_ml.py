"""BigQuery ML engine: ARIMA_PLUS / ARIMA_PLUS_XREG statements from `sql/forecasting/`.

Training is asynchronous. The weekly retrain records a training in `model_versions` (RUNNING)
and submits its CREATE MODEL statement as a BigQuery job with a job id made of the dataset,
chain, training date and attempt, without waiting for it (`submit_training`); the training
check (`check_trainings`, on a schedule) reads each running job's state and records DONE (after
writing ML.ARIMA_EVALUATE into `model_diagnostics`) or FAILED. Models are dated, one per
training: `arima_<chain>_<YYYYMMDD>`, or `arimax_<chain>_<YYYYMMDD>` for ARIMA_PLUS_XREG, which a
chain gets when it keeps a promotion plan (`promotions`). The daily forecast uses the newest
model of its chain whose training is DONE (`select_model`); a failed training leaves the
previous model in use.

Every value is a query parameter; the few OPTIONS that BigQuery only accepts as literals
(horizon, holiday region) and the model name come from validated settings.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
from google.api_core import exceptions as gexc
from google.cloud import bigquery
from scipy import stats

from retailopt import sqlfiles
from retailopt.config import ConfigError, Settings
from retailopt.ingest import InputError
from retailopt.warehouse.base import query_file
from retailopt.warehouse.bigquery import query_parameters

from .components import COMPONENT_COLUMNS
from .distributions import QUANTILES
from .engine import DAILY_COLUMNS, PROTECTION_COLUMNS, ForecastResult
from .frequency import bigquery_frequency, check_setting

ARIMA_PLUS = "ARIMA_PLUS"
ARIMA_PLUS_XREG = "ARIMA_PLUS_XREG"
_PREFIX = {ARIMA_PLUS: "arima", ARIMA_PLUS_XREG: "arimax"}
_MODEL_RE = re.compile(r"^(arima|arimax)_([A-Za-z0-9_]{1,200})_(\d{8})$")
# A model forecasts this many days beyond the run horizon, so the daily runs of the weeks after a
# training (and after up to four failed ones) still get the whole horizon from it.
MODEL_SLACK_DAYS = 35
MAX_HORIZON = 10_000  # BigQuery ML's limit of the HORIZON option
# A RUNNING training whose job BigQuery does not know after this long was never submitted (the
# retrain handler stopped between recording it and submitting it).
UNKNOWN_JOB_GRACE = timedelta(hours=1)
RUNNING, DONE, FAILED = "RUNNING", "DONE", "FAILED"
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
VERSION_COLUMNS = ["chain_id", "model_name", "model_type", "trained_on", "data_start", "data_end", "horizon",
                   "job_id", "job_location", "state", "error", "submitted_at", "finished_at"]


class ModelUnavailable(LookupError):
    """No finished model can forecast this run (none trained yet, or the newest is too old)."""


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict[str, Any]


@dataclass(frozen=True)
class ModelVersion:
    """One training of a chain's model: a `model_versions` row."""
    chain_id: str
    model_name: str
    model_type: str
    trained_on: date
    data_start: date
    data_end: date
    horizon: int
    job_id: str
    job_location: str | None
    state: str
    submitted_at: datetime
    error: str | None = None
    finished_at: datetime | None = None

    @property
    def xreg(self) -> bool:
        return self.model_type == ARIMA_PLUS_XREG

    def age_days(self, as_of: date) -> int:
        return (as_of - self.trained_on).days

    def forecast_horizon(self, forecast_start: date, horizon_days: int) -> int:
        """ML.FORECAST's horizon for a run: its forecasts start the day after the training data."""
        return (forecast_start - self.data_end).days - 1 + int(horizon_days)

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in VERSION_COLUMNS}


@dataclass(frozen=True)
class Finished:
    """A training the check saw ending: DONE (diagnostic rows written) or FAILED (error)."""
    version: ModelVersion
    diagnostics: int = 0
    diagnostics_error: str | None = None  # BigQuery refused ML.ARIMA_EVALUATE; the model is usable


# --------------------------------------------------------------------------- names

def chain_token(chain_id: str) -> str:
    """The chain as it goes into model names (letters, digits, _): `-` becomes `_`, and a short
    hash of the id keeps two chains apart that differ only there."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", chain_id or ""):
        raise ConfigError(f"invalid chain id {chain_id!r}: letters, digits, _ and - (at most 64)")
    if "-" not in chain_id:
        return chain_id
    return f"{chain_id.replace('-', '_')}_{hashlib.sha256(chain_id.encode()).hexdigest()[:6]}"


def model_name(chain_id: str, trained_on: date, *, xreg: bool = False) -> str:
    return f"{_PREFIX[ARIMA_PLUS_XREG if xreg else ARIMA_PLUS]}_{chain_token(chain_id)}_{trained_on:%Y%m%d}"


def parse_model_name(name: str) -> tuple[date, bool] | None:
    """(training date, xreg) of a model name made by `model_name`, else None."""
    m = _MODEL_RE.match(name)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(3), "%Y%m%d").date(), m.group(1) == "arimax"
    except ValueError:
        return None


def training_job_id(dataset: str, chain_id: str, trained_on: date, attempt: int) -> str:
    """The BigQuery job id of a training: the same training (a redelivered or repeated retrain
    message) always asks for the same job, and BigQuery refuses a second job with that id. Job
    ids are unique per project, hence the dataset (one per deployment)."""
    return f"retailopt_train_{dataset}_{chain_token(chain_id)}_{trained_on:%Y%m%d}_{int(attempt)}"


def holiday_region(settings: Settings) -> str:
    region = (settings.holiday_country or "GLOBAL").upper()
    if region not in HOLIDAY_REGIONS:
        raise ConfigError(f"invalid setting holiday_country={settings.holiday_country!r}: "
                          "not a BigQuery ML holiday_region")
    return region


def _check_model(name: str) -> str:
    if parse_model_name(name) is None:
        raise ConfigError(f"invalid model name {name!r}: expected arima[x]_<chain>_YYYYMMDD")
    return name


def _render(settings: Settings, path: str, **names: str) -> str:
    text = sqlfiles.read_sql(path)
    for key, value in names.items():
        text = text.replace("{" + key + "}", value)
    return sqlfiles.render(text, settings.dataset, settings.project)


def _features(settings: Settings) -> str:
    # The future regressors are a query of their own, inlined as the table argument.
    return sqlfiles.read_sql("forecasting/future_features.sql").strip()


# --------------------------------------------------------------------------- statements

def model_horizon(settings: Settings) -> int:
    return min(int(settings.horizon_days) + MODEL_SLACK_DAYS, MAX_HORIZON)


def create_model_statement(settings: Settings, model: str, *, data_start: date, data_end: date, horizon: int,
                           xreg: bool = False) -> Statement:
    horizon = int(horizon)
    if not 1 <= horizon <= MAX_HORIZON:
        raise ConfigError(f"invalid model horizon {horizon}: 1..{MAX_HORIZON}")
    parsed = parse_model_name(_check_model(model))
    if parsed[1] != xreg:
        raise ConfigError(f"model name {model!r} does not name an {'ARIMA_PLUS_XREG' if xreg else 'ARIMA_PLUS'} model")
    sql = _render(settings, "forecasting/create_model_xreg.sql" if xreg else "forecasting/create_model.sql",
                  model=model, horizon=str(periods(settings, horizon)), holiday_region=holiday_region(settings),
                  data_frequency=bigquery_frequency(settings.data_frequency))
    step_days, step_months = _STEPS[check_setting(settings.data_frequency)]
    return Statement(sql, {"data_start": data_start, "data_end": data_end, "step_days": step_days,
                           "step_months": step_months})


# The gap-filling grid of each data_frequency: a row every step_days days or step_months months
# from a series' first sale (AUTO_FREQUENCY fills days: set the frequency for weekly or monthly
# chains).
_STEPS = {"auto": (1, 0), "daily": (1, 0), "weekly": (7, 0), "monthly": (0, 1), "quarterly": (0, 3)}
_PERIOD_DAYS = {"auto": 1.0, "daily": 1.0, "weekly": 7.0, "monthly": 365.25 / 12, "quarterly": 365.25 / 4}


def periods(settings: Settings, days: int) -> int:
    """A span of days as BigQuery ML's horizon in the model's periods (whole periods, rounded up):
    model_versions keeps days, the statements count periods."""
    per = _PERIOD_DAYS[check_setting(settings.data_frequency)]
    return int(days) if per == 1.0 else max(int(np.ceil(int(days) / per - 1e-9)), 1)


def forecast_statement(settings: Settings, version: ModelVersion, forecast_start: date) -> Statement:
    model = _check_model(version.model_name)
    params: dict[str, Any] = {"horizon": _run_horizon(settings, version, forecast_start),
                              "confidence_level": float(settings.confidence_level)}
    if version.xreg:
        params.update(data_start=version.data_start, data_end=version.data_end)
        return Statement(_render(settings, "forecasting/forecast_xreg.sql", model=model,
                                 features=_features(settings)), params)
    return Statement(_render(settings, "forecasting/forecast.sql", model=model), params)


def explain_statement(settings: Settings, version: ModelVersion, forecast_start: date,
                      history_days: int = 91) -> Statement:
    model = _check_model(version.model_name)
    params: dict[str, Any] = {"horizon": _run_horizon(settings, version, forecast_start),
                              "confidence_level": float(settings.confidence_level),
                              "forecast_start": forecast_start, "history_days": int(history_days)}
    if version.xreg:
        params.update(data_start=version.data_start, data_end=version.data_end)
        return Statement(_render(settings, "forecasting/explain_forecast_xreg.sql", model=model,
                                 features=_features(settings)), params)
    return Statement(_render(settings, "forecasting/explain_forecast.sql", model=model), params)


def evaluate_statement(settings: Settings, model: str) -> Statement:
    return Statement(_render(settings, "forecasting/arima_evaluate.sql", model=_check_model(model)), {})


def features_statement(settings: Settings, version: ModelVersion, forecast_start: date) -> Statement:
    """The future regressors an ARIMA_PLUS_XREG forecast of this run gets, as rows (for checks)."""
    return Statement(sqlfiles.render(_features(settings), settings.dataset, settings.project),
                     {"data_start": version.data_start, "data_end": version.data_end,
                      "horizon": _run_horizon(settings, version, forecast_start)})


def promoted_days_statement(settings: Settings, version: ModelVersion, forecast_start: date) -> Statement:
    """How many series-days of the run's horizon an ARIMA_PLUS_XREG forecast gets as promoted."""
    return Statement(_render(settings, "forecasting/promoted_days.sql", features=_features(settings)),
                     {"data_start": version.data_start, "data_end": version.data_end, "forecast_start": forecast_start,
                      "horizon": _run_horizon(settings, version, forecast_start)})


def _run_horizon(settings: Settings, version: ModelVersion, forecast_start: date) -> int:
    needed = version.forecast_horizon(forecast_start, settings.horizon_days)
    if forecast_start <= version.data_end:
        raise ModelUnavailable(f"model {version.model_name} learnt the sales up to {version.data_end}: "
                               f"it cannot forecast a run of {forecast_start}")
    if needed > version.horizon:
        last = version.data_end + timedelta(days=version.horizon)
        raise ModelUnavailable(
            f"model {version.model_name} (trained on {version.trained_on}) forecasts up to {last}; the run of "
            f"{forecast_start} needs {settings.horizon_days} days from then: retrain (POST /retrain)")
    return periods(settings, needed)


def run(client: bigquery.Client, statement: Statement) -> pd.DataFrame:
    config = bigquery.QueryJobConfig(query_parameters=query_parameters(statement.params))
    rows = client.query(statement.sql, job_config=config).result()
    columns = [field.name for field in rows.schema] if rows.schema else []
    return pd.DataFrame([dict(row.items()) for row in rows], columns=columns)


# --------------------------------------------------------------------------- model_versions

def _date(value: Any) -> date:
    return pd.Timestamp(value).date()


def _timestamp(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _versions(rows: pd.DataFrame) -> list[ModelVersion]:
    out = []
    for r in rows.to_dict(orient="records"):
        out.append(ModelVersion(
            chain_id=str(r["chain_id"]), model_name=str(r["model_name"]), model_type=str(r["model_type"]),
            trained_on=_date(r["trained_on"]), data_start=_date(r["data_start"]), data_end=_date(r["data_end"]),
            horizon=int(r["horizon"]), job_id=str(r["job_id"]), job_location=_text(r["job_location"]),
            state=str(r["state"]), submitted_at=_timestamp(r["submitted_at"]), error=_text(r["error"]),
            finished_at=_timestamp(r["finished_at"])))
    return out


def model_versions(wh: Any, chain_id: str, as_of: date) -> list[ModelVersion]:
    """A chain's trainings on or before `as_of`, newest first."""
    return _versions(query_file(wh, "model_versions", {"chain_id": chain_id, "trained_until": as_of}))


def running_trainings(wh: Any) -> list[ModelVersion]:
    return _versions(query_file(wh, "running_trainings"))


def record_training(wh: Any, version: ModelVersion) -> None:
    wh.insert("model_versions", pd.DataFrame([version.row()], columns=VERSION_COLUMNS))


def finish_training(wh: Any, version: ModelVersion, state: str, *, error: str | None = None,
                    now: datetime | None = None) -> ModelVersion:
    if state not in (DONE, FAILED):
        raise ValueError(f"a training ends DONE or FAILED, not {state!r}")
    now = now or datetime.now(timezone.utc)
    wh.execute(sqlfiles.read_sql("queries/finish_training.sql"),
               {"job_id": version.job_id, "state": state, "error": error, "finished_at": now})
    return replace(version, state=state, error=error, finished_at=now)


def select_model(wh: Any, chain_id: str, as_of: date) -> ModelVersion:
    """The newest model of the chain trained on or before `as_of` whose training is DONE. A
    training still running or FAILED leaves the model before it in use."""
    for version in model_versions(wh, chain_id, as_of):
        if version.state == DONE:
            return version
    raise ModelUnavailable(f"no BigQuery ML model of chain {chain_id!r} trained on or before {as_of} has "
                           "finished training: retrain (POST /retrain) and let the training check record it")


# --------------------------------------------------------------------------- training

def uses_promotions(wh: Any, *, data_start: date, data_end: date, horizon: int) -> bool:
    """ARIMA_PLUS_XREG for this training: the chain keeps a promotion plan over the history or the
    model's horizon, and its history has promotion days to learn the lift from."""
    rows = wh.query(sqlfiles.read_sql("forecasting/promotion_use.sql"),
                    {"data_start": data_start, "data_end": data_end, "horizon": int(horizon)})
    if rows.empty:
        return False
    plan_rows, promoted = (int(0 if pd.isna(v) else v) for v in (rows.plan_rows.iloc[0], rows.promoted_history.iloc[0]))
    return plan_rows > 0 and promoted > 0


def plan_training(wh: Any, settings: Settings, chain_id: str, trained_on: date, attempt: int,
                  *, now: datetime | None = None) -> ModelVersion:
    """What the training of `trained_on` learns: the sales before that day (up to the last day
    with sales), over `history_days`, with promotions when the chain plans them."""
    last = query_file(wh, "last_sale_before", {"before": trained_on}).last_sale_date.iloc[0]
    if last is None or pd.isna(last):
        raise InputError(f"no sales before {trained_on}: import data before training a model")
    data_end = _date(last)
    data_start = data_end - timedelta(days=int(settings.history_days) - 1)
    horizon = model_horizon(settings)
    xreg = uses_promotions(wh, data_start=data_start, data_end=data_end, horizon=horizon)
    location = getattr(wh, "location", None)
    return ModelVersion(
        chain_id=chain_id, model_name=model_name(chain_id, trained_on, xreg=xreg),
        model_type=ARIMA_PLUS_XREG if xreg else ARIMA_PLUS, trained_on=trained_on, data_start=data_start,
        data_end=data_end, horizon=horizon, job_id=training_job_id(settings.dataset, chain_id, trained_on, attempt),
        job_location=location, state=RUNNING, submitted_at=now or datetime.now(timezone.utc))


def submit_training(wh: Any, settings: Settings, chain_id: str, trained_on: date, *,
                    client: bigquery.Client | None = None,
                    now: datetime | None = None) -> tuple[ModelVersion, bigquery.QueryJob | None]:
    """Start the training of `trained_on` unless it is running or done already; returns at once.

    The training is recorded (RUNNING, with its job id) before its job is submitted, so a
    delivery that stopped in between leaves a record the next one submits exactly. The job id is
    the training's: when the job exists already (a redelivered or repeated message), BigQuery
    refuses the second submission (409) and the job that exists is looked up instead. After a
    FAILED training of the day, a new retrain message makes the next attempt (a new job id).
    Returns the training and its job (None when the training is DONE already).
    """
    client = client or wh.client
    trainings = [v for v in model_versions(wh, chain_id, trained_on) if v.trained_on == trained_on]
    current = next((v for v in trainings if v.state in (RUNNING, DONE)), None)
    if current is not None and current.state == DONE:
        return current, None
    if current is None:
        current = plan_training(wh, settings, chain_id, trained_on, attempt=len(trainings) + 1, now=now)
        record_training(wh, current)
    statement = create_model_statement(settings, current.model_name, data_start=current.data_start,
                                       data_end=current.data_end, horizon=current.horizon, xreg=current.xreg)
    config = bigquery.QueryJobConfig(query_parameters=query_parameters(statement.params),
                                     labels={"retailopt": "training"})
    try:
        job = client.query(statement.sql, job_config=config, job_id=current.job_id,
                           location=current.job_location, job_retry=None)
    except gexc.Conflict:  # submitted before: the job with the training's id is the training
        job = client.get_job(current.job_id, location=current.job_location)
    return current, job


def check_trainings(wh: Any, settings: Settings, *, client: bigquery.Client | None = None,
                    now: datetime | None = None) -> tuple[list[Finished], int]:
    """Record how the running trainings ended: DONE (with their ML.ARIMA_EVALUATE diagnostics) or
    FAILED (with BigQuery's error). Returns the trainings that ended and how many still run."""
    client = client or wh.client
    now = now or datetime.now(timezone.utc)
    finished: list[Finished] = []
    still_running = 0
    for version in running_trainings(wh):
        try:
            job = client.get_job(version.job_id, location=version.job_location)
        except gexc.NotFound:
            if now - version.submitted_at < UNKNOWN_JOB_GRACE:
                still_running += 1
                continue
            error = f"BigQuery has no job {version.job_id}: it was never submitted"
            finished.append(Finished(finish_training(wh, version, FAILED, error=error, now=now)))
            continue
        if job.state != "DONE":
            still_running += 1
            continue
        if job.error_result:
            error = str(job.error_result.get("message") or job.error_result.get("reason") or job.error_result)
            finished.append(Finished(finish_training(wh, version, FAILED, error=error, now=now)))
            continue
        # Diagnostics first: if writing them fails for a passing reason the training stays
        # RUNNING and the next check writes them again (they are replaced per model). A model
        # BigQuery will not evaluate is still a trained model: it is DONE without diagnostics.
        try:
            diagnostics, refused = record_diagnostics(wh, settings, version, client=client), None
        except (gexc.BadRequest, gexc.NotFound) as exc:
            diagnostics, refused = 0, exc.message
        finished.append(Finished(finish_training(wh, version, DONE, now=now), diagnostics, refused))
    return finished, still_running


def diagnostics_statement(settings: Settings, version: ModelVersion) -> Statement:
    """sql/forecasting/record_diagnostics.sql with the model's ML.ARIMA_EVALUATE query inlined."""
    evaluate = evaluate_statement(settings, version.model_name)
    trained_on, xreg = parse_model_name(_check_model(version.model_name))
    text = sqlfiles.read_sql("forecasting/record_diagnostics.sql").replace("{evaluate}", evaluate.sql)
    return Statement(sqlfiles.render(text, settings.dataset, settings.project),
                     {**evaluate.params, "model_name": version.model_name, "trained_on": trained_on,
                      "kind": "ARIMA_XREG" if xreg else "ARIMA"})


def record_diagnostics(wh: Any, settings: Settings, version: ModelVersion, *,
                       client: bigquery.Client | None = None) -> int:
    """ML.ARIMA_EVALUATE of a trained model into `model_diagnostics` (its rows replaced), written
    by one INSERT ... SELECT inside BigQuery (sql/forecasting/record_diagnostics.sql); returns the
    rows written."""
    client = client or wh.client
    statement = diagnostics_statement(settings, version)
    params = {"model_name": statement.params["model_name"], "trained_on": statement.params["trained_on"]}
    wh.execute("DELETE FROM `{dataset}.model_diagnostics` WHERE trained_on = @trained_on "
               "AND model_name = @model_name", params)
    run(client, statement)
    written = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.model_diagnostics` WHERE trained_on = @trained_on "
                       "AND model_name = @model_name", params)
    return int(written.n.iloc[0])


# --------------------------------------------------------------------------- forecasting

def forecast_bigquery(client: bigquery.Client, settings: Settings, version: ModelVersion, *,
                      forecast_start: date, window_days: pd.DataFrame, component_days: int = 0) -> ForecastResult:
    """Daily forecasts and window demand of a run from a trained model (daily trigger); with
    ``component_days`` > 0 also ML.EXPLAIN_FORECAST's decomposition of that many days of history
    and of the forecast (``components``). An ARIMA_PLUS_XREG model gets the planned promotions
    and prices of every day it forecasts."""
    rows = run(client, forecast_statement(settings, version, forecast_start))
    daily = read_forecast_rows(rows, model=version.model_name)
    daily = daily[daily["forecast_date"] >= pd.Timestamp(forecast_start)].reset_index(drop=True)
    kind = check_setting(settings.data_frequency)
    if _PERIOD_DAYS[kind] == 1.0:
        protection = protection_from_daily(daily, window_days)
    else:  # weekly or monthly rows: windows of whole periods, restated for their own days
        from .frequency import make_frequency, periods_for_days
        from .periodic import protection_for_days

        freq = make_frequency(kind)
        w = window_days.loc[:, ["store_id", "product_id", "window_days"]].astype({"store_id": str, "product_id": str})
        protection = protection_from_daily(daily, w.assign(window_days=periods_for_days(w["window_days"], freq)))
        days = protection[["store_id", "product_id"]].merge(w, on=["store_id", "product_id"], how="left")
        protection = protection_for_days(protection, days["window_days"].to_numpy(), freq.period_days)
    series = daily.groupby(["store_id", "product_id"], as_index=False).agg(model=("model", "first"))
    series["fallback_reason"] = None
    if component_days > 0:
        components = read_component_rows(
            run(client, explain_statement(settings, version, forecast_start, component_days)),
            model=version.model_name)
    else:
        components = pd.DataFrame(columns=COMPONENT_COLUMNS)
    return ForecastResult(daily=daily, protection=protection, series=series, components=components)


def promoted_days(client: bigquery.Client, settings: Settings, version: ModelVersion, forecast_start: date) -> int:
    """Series-days of the run's horizon on promotion in an ARIMA_PLUS_XREG forecast (0 otherwise)."""
    if not version.xreg:
        return 0
    rows = run(client, promoted_days_statement(settings, version, forecast_start))
    return 0 if rows.empty or pd.isna(rows.promoted_days.iloc[0]) else int(rows.promoted_days.iloc[0])


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
    """ML.EXPLAIN_FORECAST rows -> `forecast_components` columns (without run_id).

    An ARIMA_PLUS_XREG model adds one attribution column per regressor. The table has no
    regressor column; as in the local engine, the promotion's part is shown in holiday_effect
    (a calendar event). The price's part has no column (the regular price rarely moves)."""
    ts = pd.to_datetime(rows["time_series_timestamp"], utc=True)
    is_forecast = rows["time_series_type"].astype(str).to_numpy() == "forecast"
    data = rows["time_series_data"].to_numpy(dtype=float)

    def col(name: str) -> np.ndarray:
        return rows[name].to_numpy(dtype=float) if name in rows.columns else np.full(len(rows), np.nan)

    holiday = col("holiday_effect")
    for name in rows.columns:
        if re.fullmatch(r"attribution_+on_promotion", str(name)):
            lift = col(name)
            holiday = np.where(np.isnan(holiday), lift, holiday + np.nan_to_num(lift))

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
        "holiday_effect": holiday,
        "spikes_and_dips": col("spikes_and_dips"),
        "step_changes": col("step_changes"),
        "residual": col("residual"),
        "model": model,
    })
    return out.loc[:, COMPONENT_COLUMNS]


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
