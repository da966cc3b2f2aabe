"""BigQuery ML engine on bqemulator: trainings as jobs and their bookkeeping, the plain-SQL parts
of the statements (training data, future regressors), model selection, and reading
ML.FORECAST-shaped rows. The statements' BigQuery ML side (options, function signatures) is
checked in test_forecasting_bigquery_ml_sql.py."""

from __future__ import annotations

import dataclasses

import datetime as dt
import uuid

import numpy as np
import pandas as pd
import pytest

from retailopt.config import Settings
from retailopt.forecasting import DAILY_COLUMNS, PROTECTION_COLUMNS
from retailopt.forecasting import bigquery_ml as bq
from retailopt.ingest import InputError
from retailopt.warehouse.bigquery import BigQueryWarehouse

from bqml_support import EVALUATE_OUT, EXPLAIN_OUT, FORECAST_OUT, evaluate_rows_for, replace_table_function

CHAIN = "acme"
UTC = dt.timezone.utc


@pytest.fixture
def env(bqemu_client):
    dataset = f"t_{uuid.uuid4().hex[:8]}"
    wh = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=dataset)
    wh.ensure_schema()
    settings = Settings(warehouse="bigquery", project=bqemu_client.project, dataset=dataset, chain_id=CHAIN,
                        forecast_engine="bigquery_ml", horizon_days=14, history_days=60)
    return bqemu_client, wh, settings


def _sales(wh, rows: list[tuple[str, str, str, int, float, bool]]) -> None:
    wh.insert("sales", pd.DataFrame(rows, columns=["store_id", "product_id", "sale_date", "units", "price",
                                                   "on_promotion"]))


def _promotions(wh, rows: list[tuple[str | None, str, str, str]]) -> None:
    wh.insert("promotions", pd.DataFrame(rows, columns=["store_id", "product_id", "start_date", "end_date"]))


def _products(wh, prices: dict[str, float]) -> None:
    wh.insert("products", pd.DataFrame({
        "product_id": list(prices), "name": list(prices), "category": "c", "unit_cost": 1.0,
        "price": list(prices.values()), "case_pack": 6}))


def _versions(wh) -> pd.DataFrame:
    return wh.query("SELECT * FROM `{dataset}.model_versions` ORDER BY submitted_at")


# --- training ------------------------------------------------------------------------------------

def test_training_is_recorded_and_submitted_as_a_job_named_by_the_training(env):
    client, wh, settings = env
    _sales(wh, [("S1", "P1", "2025-01-01", 3, 1.0, False), ("S1", "P1", "2025-01-03", 4, 1.0, False),
                ("S1", "P1", "2025-01-06", 9, 1.0, False)])  # the training day's sales are not learnt
    version, job = bq.submit_training(wh, settings, CHAIN, dt.date(2025, 1, 6))
    assert version.model_name == "arima_acme_20250106" and version.model_type == "ARIMA_PLUS"
    assert version.data_end == dt.date(2025, 1, 3) and version.data_start == dt.date(2024, 11, 5)
    assert version.horizon == 14 + bq.MODEL_SLACK_DAYS
    assert job.job_id == version.job_id == bq.training_job_id(settings.dataset, CHAIN, dt.date(2025, 1, 6), 1)
    assert client.get_job(version.job_id, location=version.job_location).job_id == version.job_id
    rows = _versions(wh)
    assert rows[["model_name", "state", "job_id"]].values.tolist() == [["arima_acme_20250106", "RUNNING", job.job_id]]
    # The emulator ran the statement (it records the model without training it).
    assert "arima_acme_20250106" in {m.model_id for m in client.list_models(f"{settings.project}.{settings.dataset}")}
    # The same training again (a redelivery, a second message of the day): the same job.
    again, job2 = bq.submit_training(wh, settings, CHAIN, dt.date(2025, 1, 6))
    assert again.job_id == version.job_id and job2.job_id == version.job_id and len(_versions(wh)) == 1


def test_a_chain_that_plans_promotions_trains_arima_plus_xreg(env):
    client, wh, settings = env
    _sales(wh, [("S1", "P1", "2025-01-01", 3, 2.0, False), ("S1", "P1", "2025-01-02", 9, 1.5, True),
                ("S1", "P1", "2025-01-04", 4, 2.0, False)])
    _promotions(wh, [(None, "P1", "2025-01-10", "2025-01-12")])
    version, _ = bq.submit_training(wh, settings, CHAIN, dt.date(2025, 1, 5))
    assert version.model_type == "ARIMA_PLUS_XREG" and version.model_name == "arimax_acme_20250105"
    assert version.model_name in {m.model_id for m in client.list_models(f"{settings.project}.{settings.dataset}")}


def test_promotions_alone_do_not_make_a_regressor_without_promotion_days_to_learn_from(env):
    _, wh, settings = env
    _sales(wh, [("S1", "P1", "2025-01-01", 3, 2.0, False), ("S1", "P1", "2025-01-04", 4, 2.0, False)])
    assert not bq.uses_promotions(wh, data_start=dt.date(2024, 11, 6), data_end=dt.date(2025, 1, 4),
                                  horizon=49)
    _promotions(wh, [("S1", "P1", "2025-03-10", "2025-03-12")])  # only after the history and horizon
    assert not bq.uses_promotions(wh, data_start=dt.date(2024, 11, 6), data_end=dt.date(2025, 1, 4),
                                  horizon=49)
    _promotions(wh, [("S1", "P1", "2025-01-02", "2025-01-02")])
    assert bq.uses_promotions(wh, data_start=dt.date(2024, 11, 6), data_end=dt.date(2025, 1, 4), horizon=49)


def test_no_training_without_sales(env):
    _, wh, settings = env
    with pytest.raises(InputError, match="no sales before 2025-01-06"):
        bq.submit_training(wh, settings, CHAIN, dt.date(2025, 1, 6))
    assert _versions(wh).empty


def test_a_recorded_training_whose_job_never_started_is_submitted_by_the_next_delivery(env):
    """The delivery that recorded the training stopped before submitting it: the next one submits
    exactly the recorded training (same job id, same model), not a new one."""
    client, wh, settings = env
    _sales(wh, [("S1", "P1", "2025-01-01", 3, 1.0, False), ("S1", "P1", "2025-01-03", 4, 1.0, False)])
    planned = bq.plan_training(wh, settings, CHAIN, dt.date(2025, 1, 6), attempt=1)
    bq.record_training(wh, planned)
    version, job = bq.submit_training(wh, settings, CHAIN, dt.date(2025, 1, 6))
    assert version == planned and job.job_id == planned.job_id and len(_versions(wh)) == 1
    assert client.get_job(planned.job_id, location=planned.job_location).state == "DONE"


def test_unknown_model_option_is_rejected_by_the_emulator(env):
    client, _, settings = env
    statement = bq.create_model_statement(settings, "arima_acme_20250105", data_start=dt.date(2024, 11, 6),
                                          data_end=dt.date(2025, 1, 4), horizon=49)
    bad = statement.sql.replace("decompose_time_series = TRUE", "decompose_time_series = TRUE,\n  no_such_option = 1")
    with pytest.raises(Exception, match="(?i)no_such_option|option"):
        bq.run(client, bq.Statement(bad, statement.params))


def test_xreg_training_rows_carry_the_regular_price_and_every_promotion_day(env):
    """The SELECT of the ARIMA_PLUS_XREG statement, run alone: gap-filled days, the regular price
    carried over promotion days, promotion days from sales flags and, without sales, the plan."""
    client, wh, settings = env
    _products(wh, {"P1": 2.5, "P2": 7.0})
    _sales(wh, [("S1", "P1", "2025-01-01", 3, 2.0, False), ("S1", "P1", "2025-01-02", 9, 1.5, True),
                ("S1", "P1", "2025-01-05", 4, 2.2, False), ("S2", "P2", "2025-01-03", 1, 6.0, True),
                ("S2", "P2", "2025-01-05", 2, 7.0, False)])
    _promotions(wh, [(None, "P1", "2025-01-03", "2025-01-03"), ("S2", "P2", "2025-01-04", "2025-01-04")])
    statement = bq.create_model_statement(settings, "arimax_acme_20250106", data_start=dt.date(2024, 11, 7),
                                          data_end=dt.date(2025, 1, 5), horizon=49, xreg=True)
    select = statement.sql[statement.sql.index(") AS\n") + len(") AS\n"):]
    rows = bq.run(client, bq.Statement(select, statement.params))
    rows["sale_date"] = rows.sale_date.astype(str)
    got = {(r.store_id, r.product_id, r.sale_date): (r.units, round(r.price, 2), r.on_promotion)
           for r in rows.itertuples()}
    assert got == {
        ("S1", "P1", "2025-01-01"): (3.0, 2.0, 0), ("S1", "P1", "2025-01-02"): (9.0, 2.0, 1),
        ("S1", "P1", "2025-01-03"): (0.0, 2.0, 1), ("S1", "P1", "2025-01-04"): (0.0, 2.0, 0),
        ("S1", "P1", "2025-01-05"): (4.0, 2.2, 0),
        # Before its first regular-price day the series takes the product's price.
        ("S2", "P2", "2025-01-03"): (1.0, 7.0, 1), ("S2", "P2", "2025-01-04"): (0.0, 7.0, 1),
        ("S2", "P2", "2025-01-05"): (2.0, 7.0, 0),
    }


@pytest.mark.parametrize("frequency, dates, expected", [
    ("weekly", ["2024-12-06", "2024-12-20", "2025-01-03"],
     {"2024-12-06": 3.0, "2024-12-13": 0.0, "2024-12-20": 5.0, "2024-12-27": 0.0, "2025-01-03": 2.0}),
    ("monthly", ["2024-09-01", "2024-11-01", "2025-01-01"],
     {"2024-09-01": 3.0, "2024-10-01": 0.0, "2024-11-01": 5.0, "2024-12-01": 0.0, "2025-01-01": 2.0}),
])
def test_training_rows_are_gap_filled_on_the_data_frequencys_grid(env, frequency, dates, expected):
    """The SELECT of the ARIMA_PLUS statement, run alone on weekly or monthly sales: a missing
    week or month is a zero row, and no day between two periods gets one."""
    client, wh, settings = env
    settings = dataclasses.replace(settings, data_frequency=frequency, history_days=400)
    _sales(wh, [("S1", "P1", d, u, 2.0, False) for d, u in zip(dates, (3, 5, 2))])
    statement = bq.create_model_statement(settings, "arima_acme_20250106", data_start=dt.date(2024, 1, 1),
                                          data_end=dt.date(2025, 1, 5), horizon=49)
    select = statement.sql[statement.sql.index(") AS\n") + len(") AS\n"):]
    rows = bq.run(client, bq.Statement(select, statement.params))
    got = {str(r.sale_date)[:10]: r.units for r in rows.itertuples()}
    assert got == expected


def test_future_regressors_cover_every_series_and_forecast_day(env):
    client, wh, settings = env
    _products(wh, {"P1": 2.5})  # P2 is no longer in the product list
    _sales(wh, [("S1", "P1", "2025-01-01", 3, 2.0, False), ("S2", "P1", "2025-01-02", 1, 2.0, False),
                ("S2", "P2", "2025-01-02", 5, 3.0, False), ("S2", "P2", "2025-01-04", 5, 2.0, True)])
    _promotions(wh, [(None, "P1", "2025-01-06", "2025-01-07"), ("S2", "P2", "2025-01-07", "2025-01-20"),
                     ("S1", "P2", "2025-01-05", "2025-01-09")])  # S1 does not sell P2: no series
    version = bq.ModelVersion(CHAIN, "arimax_acme_20250105", bq.ARIMA_PLUS_XREG, dt.date(2025, 1, 5),
                              dt.date(2024, 11, 6), dt.date(2025, 1, 4), 49, "j", "US", bq.DONE,
                              dt.datetime(2025, 1, 5, tzinfo=UTC))
    statement = bq.features_statement(settings.replace(horizon_days=3), version, dt.date(2025, 1, 6))
    assert statement.params["horizon"] == 1 + 3  # from 01-05, the day after the data, to 01-08
    rows = bq.run(client, statement)
    rows["sale_date"] = rows.sale_date.astype(str)
    got = {(r.store_id, r.product_id, r.sale_date): (r.price, r.on_promotion) for r in rows.itertuples()}
    days = ["2025-01-05", "2025-01-06", "2025-01-07", "2025-01-08"]
    expected = {}
    for store in ("S1", "S2"):
        for day in days:
            expected[(store, "P1", day)] = (2.5, int(day in ("2025-01-06", "2025-01-07")))
    for day in days:  # the last regular selling price of a product without a products row
        expected[("S2", "P2", day)] = (3.0, int(day >= "2025-01-07"))
    assert got == expected


# --- bookkeeping and model choice ----------------------------------------------------------------

def _version(settings, trained_on: dt.date, state: str, *, xreg: bool = False, attempt: int = 1) -> bq.ModelVersion:
    return bq.ModelVersion(CHAIN, bq.model_name(CHAIN, trained_on, xreg=xreg),
                           bq.ARIMA_PLUS_XREG if xreg else bq.ARIMA_PLUS, trained_on,
                           trained_on - dt.timedelta(days=60), trained_on - dt.timedelta(days=1), 49,
                           bq.training_job_id(settings.dataset, CHAIN, trained_on, attempt), "US", state,
                           dt.datetime.combine(trained_on, dt.time(3), UTC))


def test_the_newest_finished_training_is_the_model_in_use(env):
    _, wh, settings = env
    with pytest.raises(bq.ModelUnavailable, match="retrain"):
        bq.select_model(wh, CHAIN, dt.date(2025, 3, 3))
    old = _version(settings, dt.date(2025, 2, 16), bq.DONE)
    newer = _version(settings, dt.date(2025, 2, 23), bq.DONE, xreg=True)
    failed = _version(settings, dt.date(2025, 3, 2), bq.FAILED)
    running = _version(settings, dt.date(2025, 3, 2), bq.RUNNING, attempt=2)
    future = _version(settings, dt.date(2025, 3, 9), bq.DONE)
    for v in (old, newer, failed, running, future):
        bq.record_training(wh, v)
    chosen = bq.select_model(wh, CHAIN, dt.date(2025, 3, 3))
    assert chosen == newer and chosen.xreg and chosen.age_days(dt.date(2025, 3, 3)) == 8
    assert bq.select_model(wh, CHAIN, dt.date(2025, 2, 20)) == old
    assert bq.select_model(wh, CHAIN, dt.date(2025, 3, 9)) == future
    with pytest.raises(bq.ModelUnavailable):
        bq.select_model(wh, "other", dt.date(2025, 3, 3))
    # Finishing is recorded once: a second check of the same job changes nothing.
    done = bq.finish_training(wh, running, bq.DONE, now=dt.datetime(2025, 3, 2, 5, tzinfo=UTC))
    assert bq.select_model(wh, CHAIN, dt.date(2025, 3, 3)).job_id == running.job_id == done.job_id
    bq.finish_training(wh, running, bq.FAILED, error="late", now=dt.datetime(2025, 3, 2, 6, tzinfo=UTC))
    row = _versions(wh).set_index("job_id").loc[running.job_id]
    assert row.state == "DONE" and row.error is None


def test_check_records_how_each_running_training_ended(env, monkeypatch):
    """Real jobs of the emulator: a training that ran (DONE: ML.ARIMA_EVALUATE into
    model_diagnostics) and one whose statement failed (FAILED, BigQuery's message). A training
    whose job BigQuery does not know is FAILED once it is older than the grace period."""
    client, wh, settings = env
    _sales(wh, [("S1", "P1", "2025-01-01", 3, 1.0, False), ("S2", "P1", "2025-01-03", 4, 1.0, False)])
    ok, _ = bq.submit_training(wh, settings, CHAIN, dt.date(2025, 1, 6))
    broken = _version(settings, dt.date(2025, 1, 13), bq.RUNNING)
    client.query(f"SELECT * FROM `{settings.project}.{settings.dataset}.no_such_table`", job_id=broken.job_id,
                 job_retry=None)
    bq.record_training(wh, broken)
    lost = _version(settings, dt.date(2025, 1, 20), bq.RUNNING)
    bq.record_training(wh, lost)
    evaluate_rows_for(client, settings, monkeypatch, [("S1", "P1"), ("S2", "P1")])
    now = lost.submitted_at + dt.timedelta(minutes=5)
    finished, running = bq.check_trainings(wh, settings, now=now)
    states = {f.version.job_id: (f.version.state, f.diagnostics) for f in finished}
    assert states == {ok.job_id: ("DONE", 2), broken.job_id: ("FAILED", 0)} and running == 1
    failed = next(f.version for f in finished if f.version.state == "FAILED")
    assert "no_such_table" in failed.error
    diagnostics = wh.query("SELECT * FROM `{dataset}.model_diagnostics`")
    assert set(diagnostics.model_name) == {ok.model_name} and set(diagnostics.model) == {"ARIMA(1,1,1)"}
    assert diagnostics.trained_on.astype(str).unique().tolist() == ["2025-01-06"]
    # Checked again later: nothing more ended but the training whose job never existed.
    finished, running = bq.check_trainings(wh, settings, now=lost.submitted_at + bq.UNKNOWN_JOB_GRACE)
    assert [(f.version.job_id, f.version.state) for f in finished] == [(lost.job_id, "FAILED")] and running == 0
    assert "never submitted" in finished[0].version.error
    assert bq.check_trainings(wh, settings, now=now) == ([], 0)
    assert len(wh.query("SELECT * FROM `{dataset}.model_diagnostics`")) == 2


def test_a_model_bigquery_will_not_evaluate_is_done_without_diagnostics(env, monkeypatch):
    """ML.ARIMA_EVALUATE refused for good (here: its model is gone) leaves a trained model usable."""
    client, wh, settings = env
    _sales(wh, [("S1", "P1", "2025-01-01", 3, 1.0, False)])
    version, _ = bq.submit_training(wh, settings, CHAIN, dt.date(2025, 1, 6))
    monkeypatch.setattr(bq, "evaluate_statement", lambda *a, **k: bq.Statement(
        f"SELECT * FROM `{settings.project}.{settings.dataset}.{version.model_name}_gone`", {}))
    [done], running = bq.check_trainings(wh, settings)
    assert (done.version.state, done.diagnostics, running) == ("DONE", 0, 0) and "gone" in done.diagnostics_error
    assert bq.select_model(wh, CHAIN, dt.date(2025, 1, 6)).job_id == version.job_id


# --- reading results -----------------------------------------------------------------------------

def _forecast_rows() -> pd.DataFrame:
    ts = pd.date_range("2025-03-03", periods=3, freq="D", tz="UTC")
    return pd.DataFrame({
        "store_id": ["S1"] * 3 + ["S2"] * 3, "product_id": ["P1"] * 6,
        "forecast_timestamp": list(ts) * 2,
        "forecast_value": [2.0, -0.4, 1.0, 10.0, 11.0, 12.0],
        "standard_error": [1.0, 1.0, 1.5, 2.0, 2.0, 2.0],
        "confidence_level": [0.9] * 6,
        "prediction_interval_lower_bound": [0.355, -2.04, -1.47, 6.71, 7.71, 8.71],
        "prediction_interval_upper_bound": [3.64, 1.24, 3.47, 13.29, 14.29, 15.29],
    })


def test_forecast_rows_become_forecast_table_rows_with_negatives_clipped():
    daily = bq.read_forecast_rows(_forecast_rows(), model="arima_acme_20250302")
    assert list(daily.columns) == DAILY_COLUMNS
    assert (daily[["forecast_mean", "lower_bound", "upper_bound", "quantile_50", "quantile_99"]] >= 0).all().all()
    row = daily[(daily.store_id == "S1") & (daily.forecast_date == pd.Timestamp("2025-03-04"))].iloc[0]
    assert row.forecast_mean == 0 and row.lower_bound == 0 and row.upper_bound == pytest.approx(1.24)
    s2 = daily[daily.store_id == "S2"].iloc[0]
    assert s2.quantile_50 == pytest.approx(10.0) and s2.quantile_95 == pytest.approx(10 + 1.6449 * 2, abs=1e-3)
    prot = bq.protection_from_daily(daily, pd.DataFrame({"store_id": ["S1", "S2"], "product_id": ["P1", "P1"],
                                                         "window_days": [2, 5]}))
    assert list(prot.columns) == PROTECTION_COLUMNS
    s2p = prot.set_index("store_id").loc["S2"]
    # Window longer than the horizon repeats the last day; sd between independent and correlated.
    assert s2p.demand_mean == pytest.approx(10 + 11 + 12 * 3)
    assert np.sqrt(5 * 4) < s2p.demand_std < 10


def test_components_and_diagnostics_readers():
    rows = pd.DataFrame({
        "store_id": ["S1", "S1"], "product_id": ["P1", "P1"],
        "time_series_timestamp": pd.to_datetime(["2025-03-02", "2025-03-03"], utc=True),
        "time_series_type": ["history", "forecast"], "time_series_data": [3.0, -0.2],
        "time_series_adjusted_data": [2.5, None], "standard_error": [None, 1.0],
        "confidence_level": [None, 0.9], "prediction_interval_lower_bound": [None, -1.8],
        "prediction_interval_upper_bound": [None, 1.4], "trend": [2.0, 1.9],
        "seasonal_period_weekly": [0.5, -2.1], "seasonal_period_yearly": [None, None],
        "holiday_effect": [0.0, 0.0], "spikes_and_dips": [0.5, None], "step_changes": [0.0, None],
        "residual": [0.0, None]})
    comp = bq.read_component_rows(rows, model="arima_acme_20250302")
    assert comp.loc[0, "actual"] == 3.0 and np.isnan(comp.loc[0, "forecast_value"])
    assert comp.loc[1, "forecast_value"] == 0.0 and comp.loc[1, "time_series_type"] == "forecast"
    # ARIMA_PLUS_XREG: the promotion's attribution is shown with the calendar effects.
    xreg = rows.assign(attribution_on_promotion=[0.0, 1.25], attribution_price=[-0.1, -0.1])
    comp = bq.read_component_rows(xreg, model="arimax_acme_20250302")
    assert comp.holiday_effect.tolist() == [0.0, 1.25]


@pytest.mark.parametrize("xreg", [False, True], ids=["ARIMA_PLUS", "ARIMA_PLUS_XREG"])
def test_diagnostics_are_written_by_bigquery_from_ml_arima_evaluate(env, monkeypatch, xreg):
    """record_diagnostics.sql on the emulator, ML.ARIMA_EVALUATE replaced by a table of its output
    columns: one INSERT ... SELECT, whatever the number of series; the model's earlier rows are
    replaced, another model's kept."""
    client, wh, settings = env
    version = _version(settings, dt.date(2025, 3, 2), bq.RUNNING, xreg=xreg)
    other = _version(settings, dt.date(2025, 2, 23), bq.DONE)
    table = f"`{settings.project}.{settings.dataset}.ml_evaluate_out`"
    client.query(f"CREATE TABLE {table} {EVALUATE_OUT}").result()
    client.query(f"""INSERT INTO {table} VALUES
        ('S1', 'P1', 1, 1, 2, FALSE, -10.0, 26.0, 1.2, ['WEEKLY', 'YEARLY'], TRUE, FALSE, FALSE, NULL),
        ('S2', 'P1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, ['WEEKLY'], NULL, NULL, NULL, 'too short')""").result()
    real = bq.evaluate_statement
    sent: list[str] = []

    def evaluated(*args, **kwargs):
        sent.append(real(*args, **kwargs).sql)
        return replace_table_function(real(*args, **kwargs), "ARIMA_EVALUATE", "ml_evaluate_out", settings)

    monkeypatch.setattr(bq, "evaluate_statement", evaluated)
    assert bq.record_diagnostics(wh, settings, other) == 2
    assert bq.record_diagnostics(wh, settings, version) == 2
    assert bq.record_diagnostics(wh, settings, version) == 2  # replaced, not added
    assert version.model_name in sent[-1]
    diag = wh.query("SELECT * FROM `{dataset}.model_diagnostics` WHERE model_name = @m ORDER BY store_id",
                    {"m": version.model_name})
    kind = "ARIMA_XREG" if xreg else "ARIMA"
    assert diag.model.tolist() == [f"{kind}(1,1,2)", kind]
    assert diag.seasonal_periods.tolist() == ["WEEKLY,YEARLY", "WEEKLY"]
    assert diag.trained_on.astype(str).unique().tolist() == ["2025-03-02"] and set(diag.engine) == {"bigquery_ml"}
    assert diag.aic.iloc[0] == 26.0 and diag.error_message.iloc[1] == "too short"
    assert diag.demand_class.isna().all() and diag.dispersion.isna().all()
    assert len(wh.query("SELECT * FROM `{dataset}.model_diagnostics`")) == 4


# --- the forecast step ---------------------------------------------------------------------------

def test_forecast_step_forecasts_from_the_newest_finished_model_with_the_planned_promotions(env, tmp_path,
                                                                                        monkeypatch):
    """forecast_step's bigquery_ml branch end to end on the emulator: the chain plans promotions,
    so its weekly training is ARIMA_PLUS_XREG; the check records it DONE, and a run three days
    later forecasts from it. Only the ML table functions are replaced by tables of
    their output columns, joined to the real future-regressor query; statements, client,
    reading and the writes of the run's rows are the real ones."""
    from retailopt import pipeline
    from retailopt.sample import generate_sample_chain

    client, wh, settings = env
    trained_on, run_date = dt.date(2025, 3, 3), dt.date(2025, 3, 6)
    generate_sample_chain(tmp_path, n_stores=2, n_products=2, days=35, end_date=dt.date(2025, 3, 2))
    run_id = pipeline.import_step(wh, settings.replace(run_date=run_date), None, tmp_path)["run_id"]
    positions = pipeline.query_file(wh, "latest_inventory")[["store_id", "product_id"]]
    promoted = positions.product_id.iloc[0]
    _promotions(wh, [(None, promoted, "2025-02-20", "2025-02-22"), (None, promoted, "2025-03-08", "2025-03-10")])
    version, _ = bq.submit_training(wh, settings, CHAIN, trained_on)
    assert version.xreg and version.data_end == dt.date(2025, 3, 2)
    evaluate_rows_for(client, settings, monkeypatch, list(positions.itertuples(index=False)))
    with pytest.raises(bq.ModelUnavailable):  # not yet recorded as DONE
        pipeline.forecast_step(wh, settings, run_id)
    assert [f.version.state for f in bq.check_trainings(wh, settings)[0]] == ["DONE"]

    table = f"`{settings.project}.{settings.dataset}"
    client.query(f"CREATE TABLE {table}.ml_forecast_out` {FORECAST_OUT}").result()
    client.query(f"CREATE TABLE {table}.ml_explain_out` {EXPLAIN_OUT}").result()
    forecast_values, explain_values = [], []
    ml_horizon = (run_date - version.data_end).days - 1 + settings.horizon_days
    for i, (store, product) in enumerate(positions.itertuples(index=False)):
        for d in range(ml_horizon + 5):  # five days more than asked: the regressors do not cover them
            day = version.data_end + dt.timedelta(days=1 + d)
            ts = f"TIMESTAMP '{day.isoformat()} 00:00:00+00'"
            value = -0.5 if (i, d) == (0, 4) else 2.0 + i + 0.1 * d
            forecast_values.append(f"('{store}', '{product}', {ts}, {value}, 1.0, 0.9, {value - 1.645}, "
                                   f"{value + 1.645}, {value - 1.645}, {value + 1.645})")
            explain_values.append(f"('{store}', '{product}', {ts}, 'forecast', {value}, NULL, 1.0, 0.9, "
                                  f"{value - 1.645}, {value + 1.645}, {value - 0.5}, NULL, NULL, NULL, 0.5, "
                                  "NULL, 0.0, NULL, NULL, NULL, 0.25, -1.0)")
        ts = "TIMESTAMP '2025-02-20 00:00:00+00'"  # history inside the 28 days asked for
        explain_values.append(f"('{store}', '{product}', {ts}, 'history', 3.0, 2.5, NULL, NULL, NULL, NULL, "
                              "2.0, NULL, NULL, NULL, 0.5, NULL, 0.0, 0.5, 0.0, 0.0, 0.0, -1.0)")
        ts = "TIMESTAMP '2024-12-01 00:00:00+00'"  # older than that: filtered by the real WHERE
        explain_values.append(f"('{store}', '{product}', {ts}, 'history', 1.0, 1.0, NULL, NULL, NULL, NULL, "
                              "1.0, NULL, NULL, NULL, 0.0, NULL, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)")
    client.query(f"INSERT INTO {table}.ml_forecast_out` VALUES {', '.join(forecast_values)}").result()
    client.query(f"INSERT INTO {table}.ml_explain_out` VALUES {', '.join(explain_values)}").result()
    real_forecast, real_explain = bq.forecast_statement, bq.explain_statement
    sent: list[bq.Statement] = []

    def forecast_rows(*args, **kwargs):
        sent.append(real_forecast(*args, **kwargs))
        return replace_table_function(sent[-1], "FORECAST", "ml_forecast_out", settings, client)

    def explain_rows(*args, **kwargs):
        sent.append(real_explain(*args, **kwargs))
        return replace_table_function(sent[-1], "EXPLAIN_FORECAST", "ml_explain_out", settings, client)

    monkeypatch.setattr(bq, "forecast_statement", forecast_rows)
    monkeypatch.setattr(bq, "explain_statement", explain_rows)
    # ML.DETECT_ANOMALIES on the same ARIMA_PLUS_XREG model: one spike among its training days.
    from test_forecasting_anomalies import detect_on_emulator_tables

    detected = detect_on_emulator_tables(client, settings.dataset, monkeypatch)
    store, product = positions.iloc[0]
    client.query(f"INSERT INTO {table}.ml_history_out` VALUES ('{store}', '{product}', "
                 "TIMESTAMP '2025-02-27 00:00:00+00', 50, TRUE, 0, 9, 0.9999)").result()
    summary = pipeline.forecast_step(wh, settings, run_id)
    assert len(detected) == 1 and version.model_name in detected[0] and "last_regular_price" in detected[0]
    anomalies = pipeline.read_run_rows(wh, "sales_anomalies", run_id)
    assert summary["anomaly_rows"] == len(anomalies) == 1
    assert (anomalies.store_id.iloc[0], anomalies.kind.iloc[0]) == (store, "spike")
    assert all(version.model_name in s.sql for s in sent) and len(sent) == 2
    assert {s.params["horizon"] for s in sent} == {ml_horizon} == {3 + 14}
    stores = positions[positions.product_id == promoted].store_id.nunique()
    assert summary["model_age_days"] == 3 and summary["promoted_days"] == 3 * stores
    daily = pipeline.read_run_rows(wh, "forecasts", run_id)
    assert len(daily) == len(positions) * 14 == summary["forecast_rows"]
    assert pd.to_datetime(daily.forecast_date).min() == pd.Timestamp(run_date)
    assert (daily[["forecast_mean", "lower_bound", "upper_bound", "quantile_50"]] >= 0).all().all()
    assert set(daily.model) == {version.model_name}
    first = positions.iloc[0]
    clipped = daily[(daily.store_id == first.store_id) & (daily.product_id == first.product_id)
                    & (pd.to_datetime(daily.forecast_date) == pd.Timestamp("2025-03-07"))].iloc[0]
    assert clipped.forecast_mean == 0.0 and clipped.lower_bound == 0.0
    assert clipped.upper_bound == pytest.approx(-0.5 + 1.645)
    windows = pipeline.read_run_rows(wh, "demand_windows", run_id)
    assert len(windows) == len(positions) and (windows.demand_mean > 0).all()
    comp = pipeline.read_run_rows(wh, "forecast_components", run_id)
    assert len(comp) == len(positions) * (ml_horizon + 1) == summary["component_rows"]
    assert (pd.to_datetime(comp.component_date) >= pd.Timestamp("2025-02-06")).all()
    fc = comp[comp.time_series_type == "forecast"]
    assert (fc.forecast_value >= 0).all() and fc.seasonal_weekly.eq(0.5).all() and fc.holiday_effect.eq(0.25).all()
