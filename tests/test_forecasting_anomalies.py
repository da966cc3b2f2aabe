"""Sales anomalies: the local twin of ML.DETECT_ANOMALIES, leaving isolated spikes out of the fit,
the detect SQL and its BigQuery reading, and the settings behind it."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.bigquery import BigQuery
from sqlglot.tokens import TokenType

from retailopt import sqlfiles
from retailopt.config import ConfigError, Settings, load_settings
from retailopt.forecasting import ANOMALY_COLUMNS, detect_anomalies, forecast
from retailopt.forecasting import anomalies as an
from retailopt.forecasting import engine
from retailopt.forecasting.calibration import mid_pit
from retailopt.forecasting.synthetic import matrix_to_history, synthetic_matrix

END = date(2024, 6, 30)
START = END + timedelta(days=1)


def _clean(seed: int = 7, n_stores: int = 2, n_products: int = 6, n_days: int = 400):
    """Negative-binomial demand with a weekly pattern: keys, days, units (S, D), means (S, D)."""
    rng = np.random.default_rng(seed)
    keys = pd.DataFrame([(f"S{s}", f"P{p}") for s in range(n_stores) for p in range(n_products)],
                        columns=["store_id", "product_id"])
    days = pd.date_range(end=END, periods=n_days)
    weekly = np.array([0.9, 0.85, 0.9, 0.95, 1.1, 1.35, 0.95])
    mu = rng.uniform(4, 15, len(keys))[:, None] * weekly[days.dayofweek.to_numpy()][None, :]
    units = rng.negative_binomial(5.0, 5.0 / (5.0 + mu)).astype(float)
    return keys, days, units, mu


def _fit(keys, days, units, promo=None, exclude="isolated_spikes"):
    detection = detect_anomalies(matrix_to_history(keys, days, units, promo), keys, forecast_start=START,
                                 exclude=exclude)
    result = forecast(detection.history, keys, forecast_start=START, horizon=14,
                      window_days=keys.assign(window_days=7))
    return detection, result


def _series(frame: pd.DataFrame, store: str, product: str) -> pd.DataFrame:
    return frame[(frame.store_id == store) & (frame.product_id == product)]


# ----------------------------------------------------------------------------- leaving spikes out

def test_excluding_a_single_day_spike_brings_the_forecast_back_to_the_clean_one():
    keys, days, clean, mu = _clean()
    dirty = clean.copy()
    spike_day = len(days) - 10
    dirty[0, spike_day] = round(8 * mu[0, spike_day])  # a data error or a one-off order
    _, uncontaminated = _fit(keys, days, clean, exclude="none")
    _, kept = _fit(keys, days, dirty, exclude="none")
    detection, left_out = _fit(keys, days, dirty)

    row = _series(detection.anomalies, "S0", "P0")
    row = row[row.sale_date == days[spike_day]]
    assert len(row) == 1 and row.kind.iloc[0] == "spike" and row.excluded_from_training.iloc[0]
    assert row.anomaly_probability.iloc[0] > 0.999 and row.units.iloc[0] > row.upper_bound.iloc[0]
    # The day is fitted at its expected value, which is what the days around it sold.
    fitted = _series(detection.history, "S0", "P0")
    fitted = fitted[pd.to_datetime(fitted.sale_date) == days[spike_day]].units.iloc[0]
    assert fitted == pytest.approx(row.expected.iloc[0]) and fitted < 2 * mu[0, spike_day]

    def gap(res, column):
        a = _series(res.daily, "S0", "P0")[column].to_numpy()
        b = _series(uncontaminated.daily, "S0", "P0")[column].to_numpy()
        return float(np.abs(a - b).mean())

    # The spike moves the forecast (so the comparison can fail) and leaving it out undoes most of it.
    assert gap(kept, "forecast_mean") > 0.3
    assert gap(left_out, "forecast_mean") < gap(kept, "forecast_mean") / 3
    assert gap(left_out, "quantile_95") < gap(kept, "quantile_95")
    window = {name: res.protection.iloc[0].q95 for name, res in
              (("clean", uncontaminated), ("kept", kept), ("left_out", left_out))}
    assert abs(window["left_out"] - window["clean"]) < abs(window["kept"] - window["clean"])


def test_runs_of_high_sales_and_promotion_days_are_kept():
    keys, days, units, mu = _clean(seed=11)
    units = units.copy()
    promo = np.zeros(units.shape, dtype=bool)
    run = slice(len(days) - 40, len(days) - 33)  # a week of five times the sales, not flagged
    units[1, run] = np.round(5 * mu[1, run])
    pair = [len(days) - 60, len(days) - 59]  # two spike days in a row
    units[2, pair] = np.round(6 * mu[2, pair])
    flagged = len(days) - 20  # a one-day promotion in the sales file
    units[3, flagged] = round(6 * mu[3, flagged])
    promo[3, flagged] = True
    lone = len(days) - 25  # the control: the same spike, alone (neighbours 2 and 7 units) and not on promotion
    units[4, lone] = round(6 * mu[4, lone])
    history = matrix_to_history(keys, days, units, promo)
    detection = detect_anomalies(history, keys, forecast_start=START)
    a = detection.anomalies.set_index(["store_id", "product_id", "sale_date"])

    def at(product: str, day_index: int) -> pd.Series:
        return a.loc[("S0", product, days[day_index])]

    week = [at("P1", d) for d in range(run.start, run.stop) if ("S0", "P1", days[d]) in a.index]
    assert len(week) >= 2 and all(r.kind == "spike" and not r.excluded_from_training for r in week)
    assert all(at("P2", d).kind == "spike" and not at("P2", d).excluded_from_training for d in pair)
    assert at("P3", flagged).on_promotion and not at("P3", flagged).excluded_from_training
    assert at("P4", lone).excluded_from_training
    # What is kept is fitted as sold.
    fit = detection.history.set_index(["store_id", "product_id", "sale_date"]).units
    for product, day_indices in (("P1", range(run.start, run.stop)), ("P2", pair), ("P3", [flagged])):
        for d in day_indices:
            assert fit.loc[("S0", product, days[d])] == units[int(product[1:]), d]
    assert fit.loc[("S0", "P4", days[lone])] < units[4, lone] / 3


def test_detection_rows_follow_the_table_and_ml_detect_anomalies_semantics():
    keys, days, units, promo = synthetic_matrix(80, 500, END, seed=5, n_stores=4)
    detection = detect_anomalies(matrix_to_history(keys, days, units, promo), keys, forecast_start=START)
    a = detection.anomalies
    table = sqlfiles.read_sql("schema/sales_anomalies.sql")
    columns = re.findall(r"^\s+([a-z_]+)\s+[A-Z]", table[table.index("(") + 1:], re.M)
    assert list(a.columns) == ANOMALY_COLUMNS == [c for c in columns if c not in ("run_id", "run_date")]
    assert len(a) and set(a.kind) == {"spike", "dip"} and set(a.method) == {"local"}
    assert (a.anomaly_probability > 0.99).all() and (a.anomaly_probability <= 1).all()
    spikes, dips = a[a.kind == "spike"], a[a.kind == "dip"]
    assert (spikes.units > spikes.upper_bound).all() and (dips.units < dips.lower_bound).all()
    assert (a.lower_bound <= a.expected.round()).all() and (a.expected.round() <= a.upper_bound).all()
    assert not dips.excluded_from_training.any() and detection.excluded == int(a.excluded_from_training.sum())
    # Stock-outs (runs of zeros in busy series) are dips, not demand to forecast from.
    assert (dips.units == 0).mean() > 0.5
    recent = an.recent(a, START)
    assert len(recent) and (recent.sale_date >= pd.Timestamp(START) - pd.Timedelta(days=28)).all()
    assert len(recent) < len(a)


def test_nothing_is_excluded_when_the_setting_says_none_and_fallback_series_have_no_anomalies():
    keys, days, units, mu = _clean(seed=3)
    units = units.copy()
    units[0, -5] = round(10 * mu[0, -5])
    units[1, :-20] = 0  # too short for an in-sample model: a fallback series
    history = matrix_to_history(keys, days, units)
    detection = detect_anomalies(history, keys, forecast_start=START, exclude="none")
    assert detection.history is history and detection.excluded == 0
    assert not detection.anomalies.excluded_from_training.any()
    assert _series(detection.anomalies, "S0", "P0").sale_date.eq(days[-5]).any()
    assert _series(detection.anomalies, "S0", "P1").empty
    with pytest.raises(ValueError, match="exclude='all'"):
        detect_anomalies(history, keys, forecast_start=START, exclude="all")


# ----------------------------------------------------------------------------- the shortcuts are exact

def test_the_fast_dense_matrix_and_level_path_equal_the_engines():
    keys, days, units, promo = synthetic_matrix(60, 300, END, seed=2, n_stores=3)
    history = matrix_to_history(keys, days, units, promo)
    history = pd.concat([history, history.iloc[:50].assign(units=1)], ignore_index=True)  # split rows
    categorical = history.assign(store_id=history.store_id.astype("category"),
                                 product_id=history.product_id.astype("category"))
    fast, rows = an._dense(categorical, keys, START, 1100)
    slow, none = an._dense(history, keys, START, 1100)
    reference = engine._densify(history, keys, START, 1100)
    assert rows is not None and none is None
    for dense in (fast, slow):
        assert dense.keys.equals(reference.keys) and dense.days.equals(reference.days)
        for name in ("units", "promo", "first", "has_rows"):
            assert np.array_equal(getattr(dense, name), getattr(reference, name)), name
    obs = np.arange(len(fast.days))[None, :] >= fast.first[:, None]
    x = fast.units / (1 + 0.3 * np.sin(np.arange(len(fast.days))))[None, :]
    path = engine._smooth_pass(x, obs, fast.first, (an._PASS1_ALPHA,), (), 28, keep_path=True)["path"]
    assert np.array_equal(an._one_step_level(x, obs, fast.first), path)
    # Both ways of rewriting the history give the same fit input (split rows share the value).
    a = detect_anomalies(categorical, keys, forecast_start=START)
    b = detect_anomalies(history, keys, forecast_start=START)
    assert a.excluded == b.excluded > 0
    pd.testing.assert_frame_equal(a.anomalies, b.anomalies)
    assert np.allclose(a.history.units.to_numpy(dtype=float), b.history.units.to_numpy(dtype=float))
    changed = a.history.units.to_numpy(dtype=float) != history.units.to_numpy(dtype=float)
    assert changed.sum() >= a.excluded


def test_the_candidate_shortcut_never_drops_an_anomaly():
    """The normal-scale shortcut (anomalies._candidates) against the exact mid-PIT, over the
    means and dispersions the engine can produce."""
    m, k = (a.ravel() for a in np.meshgrid(np.logspace(-3, 6, 1500),
                                           np.concatenate([[0.0], np.logspace(-6, np.log10(50), 500)])))
    v = m + m * m * k
    sd = np.sqrt(v)
    assert mid_pit(np.floor(m + 2 * sd), m, v).max() < 0.9825  # below (1 + 0.965) / 2
    assert mid_pit(np.floor(m + 2.5 * sd), m, v).max() < 0.9939  # below (1 + 0.988) / 2
    # The highest count that can be a dip is below max(0, mean - f sd): every count from there up
    # must have a mid-PIT above (1 - 0.965) / 2.
    bottom = 0.0
    for top, f in an._DIP_SD:
        band = (k > bottom) & (k <= top) if bottom else k <= top
        lowest = np.maximum(np.ceil(m[band] - f * sd[band]), 0)
        assert mid_pit(lowest, m[band], v[band]).min() > 0.0175, (top, f)
        bottom = top
    # And on data: the shortcut finds exactly what testing every day finds.
    keys, days, units, promo = synthetic_matrix(120, 400, END, seed=9, n_stores=4)
    history = matrix_to_history(keys, days, units, promo)
    for threshold in (0.99, 0.97):
        quick = detect_anomalies(history, keys, forecast_start=START, threshold=threshold)
        real = an._candidates
        try:
            an._candidates = lambda y, *args: np.ones(y.shape, dtype=bool)
            every_day = detect_anomalies(history, keys, forecast_start=START, threshold=threshold)
        finally:
            an._candidates = real
        assert len(quick.anomalies)
        pd.testing.assert_frame_equal(quick.anomalies, every_day.anomalies)


def test_large_chains_are_detected_in_chunks_of_whole_stores():
    keys, days, units, promo = synthetic_matrix(90, 300, END, seed=4, n_stores=6)
    history = matrix_to_history(keys, days, units, promo)
    whole = detect_anomalies(history, keys, forecast_start=START)
    chunked = detect_anomalies(history, keys, forecast_start=START, max_chunk_series=40)
    assert len(chunked.anomalies) and set(chunked.anomalies.store_id) <= set(keys.store_id)
    # Weekday profiles pool per store; holiday effects per chunk: nearly the same days.
    both = whole.anomalies.merge(chunked.anomalies, on=["store_id", "product_id", "sale_date", "kind"])
    assert len(both) >= 0.9 * max(len(whole.anomalies), len(chunked.anomalies))


# ----------------------------------------------------------------------------- the setting

def test_exclude_anomalies_setting_is_validated_and_matches_the_detector():
    assert Settings().exclude_anomalies == "isolated_spikes" == an.EXCLUDE_CHOICES[0]
    for choice in an.EXCLUDE_CHOICES:
        assert load_settings({"exclude_anomalies": choice}, environ={}).exclude_anomalies == choice
    assert load_settings(environ={"RETAILOPT_EXCLUDE_ANOMALIES": "none"}).exclude_anomalies == "none"
    with pytest.raises(ConfigError, match="exclude_anomalies='false'"):
        load_settings({"exclude_anomalies": "false"}, environ={})


# ----------------------------------------------------------------------------- BigQuery ML

class _DetectAnomalies(exp.Expression, exp.Func):
    """ML.DETECT_ANOMALIES(MODEL m [, STRUCT(...)] [, TABLE t | (query)])."""

    arg_types = {"this": True, "params_struct": False, "expression": False}


class _BigQueryML(BigQuery):
    """sqlglot's BigQuery dialect (30.11, and its main branch as of this writing) parses
    ML.FORECAST and ML.PREDICT but not ML.DETECT_ANOMALIES; this adds a parser for that one
    function with the dialect's own table and STRUCT parsing, so everything else in the
    statement is checked by the stock rules."""

    class Parser(BigQuery.Parser):
        FUNCTION_PARSERS = {**BigQuery.Parser.FUNCTION_PARSERS,
                            "DETECT_ANOMALIES": lambda self: self._parse_detect_anomalies()}

        def _parse_detect_anomalies(self):
            self._match_text_seq("MODEL")
            model = self._parse_table()
            params = data = None
            while self._match(TokenType.COMMA):
                if self._match(TokenType.STRUCT, advance=False):
                    params = self._parse_bitwise()
                else:
                    self._match_text_seq("TABLE")
                    data = self._parse_table()
            return self.expression(_DetectAnomalies(this=model, params_struct=params, expression=data))


def _model(xreg: bool) -> str:
    return "arimax_default_20250302" if xreg else "arima_default_20250302"


def _statement(xreg: bool = False):
    settings = Settings(dataset="retail")
    return an.detect_statement(settings, _model(xreg), data_start=date(2023, 3, 3),
                               data_end=date(2025, 3, 2), run_date=date(2025, 3, 6), xreg=xreg)


def _training_columns(xreg: bool) -> list[str]:
    """The columns of the model's training query (the SELECT of its CREATE MODEL statement)."""
    from retailopt.forecasting import bigquery_ml as bq
    from test_forecasting_bigquery_ml_sql import _parse

    create = bq.create_model_statement(Settings(dataset="retail"), _model(xreg), data_start=date(2023, 3, 3),
                                       data_end=date(2025, 3, 2), horizon=63, xreg=xreg)
    return _parse(create.sql).expression.named_selects


@pytest.mark.parametrize("xreg", [False, True], ids=["ARIMA_PLUS", "ARIMA_PLUS_XREG"])
def test_detect_sql_parses_as_bigquery_and_uses_only_documented_arguments(xreg):
    text = sqlfiles.read_sql("forecasting/detect_anomalies_xreg.sql" if xreg else "forecasting/detect_anomalies.sql")
    assert "https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-detect-anomalies" in text
    statement = _statement(xreg)
    (tree,) = sqlglot.parse(statement.sql, read=_BigQueryML, error_level=sqlglot.ErrorLevel.RAISE)
    calls = list(tree.find_all(_DetectAnomalies))
    assert len(calls) == 2
    for call in calls:
        assert call.this.sql("bigquery") == f"`retail.{_model(xreg)}`"
        # The only documented option for time series models: anomaly_prob_threshold, in [0, 1).
        struct = call.args["params_struct"]
        assert [e.name for e in struct.expressions] == ["anomaly_prob_threshold"]
        assert [p.name for p in struct.find_all(exp.Parameter)] == ["anomaly_prob_threshold"]
    data = [c.expression for c in calls if c.expression is not None]
    assert len(data) == 1 and isinstance(data[0], exp.Subquery)
    # The new data has the model's columns, in the training query's order: store_id, product_id,
    # sale_date, units, and for ARIMA_PLUS_XREG its regressors (price, on_promotion).
    assert data[0].this.named_selects == _training_columns(xreg)
    assert ("on_promotion" in data[0].this.named_selects) is xreg
    # The rest is plain GoogleSQL that the stock dialect parses once the two calls are tables.
    plain = _replace_calls(statement.sql, lambda query: "`retail.t`" if query is None else f"{query}")
    sqlglot.parse(plain, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
    # Every value is a parameter, and every parameter is given.
    used = {p.name for p in tree.find_all(exp.Parameter)} | set(re.findall(r"@([a-z_]+)", statement.sql))
    assert used == set(statement.params)
    assert statement.params["anomaly_prob_threshold"] == 0.99
    assert statement.params["since"] == date(2025, 2, 6) and statement.params["until"] == date(2025, 3, 5)
    with pytest.raises(ConfigError):
        an.detect_statement(Settings(), "m`; DROP TABLE x; --", data_start=date(2025, 1, 1),
                            data_end=date(2025, 3, 2), run_date=date(2025, 3, 6))
    with pytest.raises(ConfigError):
        an.detect_statement(Settings(), "m", data_start=date(2025, 1, 1), data_end=date(2025, 3, 2),
                            run_date=date(2025, 3, 6), threshold=1.0)
    with pytest.raises(ConfigError, match="ARIMA_PLUS"):  # a dated model's name says its type
        an.detect_statement(Settings(), _model(not xreg), data_start=date(2025, 1, 1), data_end=date(2025, 3, 2),
                            run_date=date(2025, 3, 6), xreg=xreg)


def _matching(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise AssertionError("unbalanced parentheses")


def _replace_calls(sql: str, replacement) -> str:
    """The statement with each ML.DETECT_ANOMALIES(...) call replaced by ``replacement(query)``
    (query: the call's input query text, None for the call on the training data)."""
    sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    calls = [m.start() for m in re.finditer(r"ML\.DETECT_ANOMALIES\(", sql)]
    assert len(calls) == 2
    for start in reversed(calls):
        end = _matching(sql, start + len("ML.DETECT_ANOMALIES"))
        body = sql[start:end + 1]
        struct_end = _matching(body, body.index("STRUCT(") + len("STRUCT"))
        rest = body[struct_end + 1:-1].strip()
        sql = sql[:start] + replacement(rest.removeprefix(",").strip() or None) + sql[end + 1:]
    return sql


def test_detect_rows_are_read_from_bigquery_into_the_anomalies_table(bqemu_client, monkeypatch):
    """detect_anomalies.sql on the emulator. The emulator does not compute ML.DETECT_ANOMALIES,
    so only its two calls are replaced: the one on the training data by a table with the
    documented output columns, the one on new data by its own input query joined to such a table
    (rows without a match get NULLs, as for a series the model does not know). Everything else --
    the gap-filling of the new days, the date window, the promotion flags, the reading and the
    write of the run's rows -- is the real thing."""
    from retailopt import pipeline
    from retailopt.warehouse.bigquery import BigQueryWarehouse

    client = bqemu_client
    dataset = f"t_{uuid.uuid4().hex[:8]}"
    wh = BigQueryWarehouse(client, project=client.project, dataset=dataset)
    wh.ensure_schema()
    settings = Settings(warehouse="bigquery", project=client.project, dataset=dataset,
                        forecast_engine="bigquery_ml")
    table = f"`{client.project}.{dataset}"
    # Trained on sales up to 2025-03-02; the run is on 2025-03-06 (new days: 03-03 .. 03-05).
    wh.insert("sales", pd.DataFrame({
        "sale_date": pd.to_datetime(["2025-02-20", "2025-02-28", "2025-03-01", "2025-03-03", "2025-03-05",
                                     "2025-02-28"]).date,
        "store_id": ["S1", "S1", "S1", "S1", "S1", "S2"], "product_id": ["P1"] * 6,
        "units": [4, 40, 5, 6, 30, 2], "price": [1.0] * 6,
        "on_promotion": [False, True, False, False, False, False]}))
    sent = detect_on_emulator_tables(client, dataset, monkeypatch)
    ts = "TIMESTAMP '{} 00:00:00+00'".format
    client.query(f"""INSERT INTO {table}.ml_history_out` VALUES
        ('S1', 'P1', {ts('2025-01-10')}, 30, TRUE, 0, 10, 0.999),
        ('S1', 'P1', {ts('2025-02-20')}, 4, FALSE, 0, 10, 0.5),
        ('S1', 'P1', {ts('2025-02-28')}, 40, TRUE, 1, 11, 0.9999),
        ('S2', 'P1', {ts('2025-02-28')}, 2, TRUE, 3, 9, 0.995)""").result()
    client.query(f"""INSERT INTO {table}.ml_new_out` VALUES
        ('S1', 'P1', {ts('2025-03-04')}, 0, TRUE, 2, 12, 0.996),
        ('S1', 'P1', {ts('2025-03-05')}, 30, TRUE, 2, 12, 0.9995),
        ('S2', 'P1', {ts('2025-03-03')}, 0, FALSE, 0, 6, 0.4)""").result()
    rows = an.detect_anomalies_bigquery(client, settings, model_name="arima_default_20250302",
                                        data_start=date(2023, 3, 3), data_end=date(2025, 3, 2),
                                        run_date=date(2025, 3, 6))
    assert "ML.DETECT_ANOMALIES(MODEL" in sent[0] and "arima_default_20250302" in sent[0]
    assert list(rows.columns) == ANOMALY_COLUMNS
    got = {(r.store_id, str(r.sale_date.date())): r for r in rows.itertuples()}
    # 2025-01-10 is before the 28 days; 02-20 and 03-03 are no anomalies.
    assert set(got) == {("S1", "2025-02-28"), ("S2", "2025-02-28"), ("S1", "2025-03-04"), ("S1", "2025-03-05")}
    assert got[("S1", "2025-02-28")].kind == "spike" and got[("S1", "2025-02-28")].on_promotion
    assert got[("S1", "2025-02-28")].expected == pytest.approx(6.0)
    assert got[("S2", "2025-02-28")].kind == "dip" and not got[("S2", "2025-02-28")].on_promotion
    # A new day without sales exists only because the new data is gap-filled with zeros.
    assert got[("S1", "2025-03-04")].units == 0 and got[("S1", "2025-03-04")].kind == "dip"
    assert got[("S1", "2025-03-05")].units == 30 and got[("S1", "2025-03-05")].kind == "spike"
    assert set(rows.method) == {"bigquery_ml"} and not rows.excluded_from_training.any()
    run_id = pipeline.start_run(wh, settings, run_date=date(2025, 3, 6))
    pipeline.replace_run_rows(wh, "sales_anomalies", run_id, rows, date(2025, 3, 6))
    stored = pipeline.read_run_rows(wh, "sales_anomalies", run_id)
    assert len(stored) == 4 and set(stored.run_date.astype(str)) == {"2025-03-06"}


def test_xreg_detection_gives_the_new_days_the_regressors_the_model_was_trained_with(bqemu_client, monkeypatch):
    """detect_anomalies_xreg.sql on the emulator: the new data of an ARIMA_PLUS_XREG model (the
    days after its training data) carries its regressors as create_model_xreg.sql computes them
    for training -- promotion days from the sales flags or, without sales, the plan; the regular
    price carried from the training days (else the product's price, else the mean selling
    price) -- and the anomalies read from both calls land in sales_anomalies. As for ARIMA_PLUS,
    only the two ML.DETECT_ANOMALIES calls are replaced by tables of their output columns."""
    from retailopt import pipeline
    from retailopt.forecasting import bigquery_ml as bq
    from retailopt.warehouse.bigquery import BigQueryWarehouse

    client = bqemu_client
    dataset = f"t_{uuid.uuid4().hex[:8]}"
    wh = BigQueryWarehouse(client, project=client.project, dataset=dataset)
    wh.ensure_schema()
    settings = Settings(warehouse="bigquery", project=client.project, dataset=dataset,
                        forecast_engine="bigquery_ml")
    data_start, data_end, run_date = date(2025, 1, 2), date(2025, 3, 2), date(2025, 3, 6)
    model = "arimax_default_20250303"
    sales = [("S1", "P1", "2025-02-20", 4, 2.0, False), ("S1", "P1", "2025-02-28", 40, 1.5, True),
             ("S1", "P1", "2025-03-01", 5, 2.0, False), ("S1", "P1", "2025-03-03", 6, 2.2, False),
             ("S1", "P1", "2025-03-05", 30, 1.6, True), ("S2", "P1", "2025-02-10", 1, 3.5, False),
             ("S2", "P1", "2025-02-28", 2, 2.5, False),
             ("S3", "P2", "2025-02-25", 3, 0.9, True),  # never a regular-price day: the product's price
             ("S4", "P3", "2025-02-26", 1, 0.8, True)]  # nor a products row: its mean selling price
    wh.insert("sales", pd.DataFrame(sales, columns=["store_id", "product_id", "sale_date", "units", "price",
                                                    "on_promotion"]).assign(
        sale_date=lambda d: pd.to_datetime(d.sale_date).dt.date))
    wh.insert("products", pd.DataFrame({"product_id": ["P1", "P2"], "name": ["p1", "p2"], "category": "c",
                                        "unit_cost": 1.0, "price": [9.0, 3.0], "case_pack": 6}))
    wh.insert("promotions", pd.DataFrame({"store_id": [None, "S3"], "product_id": ["P1", "P2"],
                                          "start_date": [date(2025, 3, 4), date(2025, 3, 3)],
                                          "end_date": [date(2025, 3, 4), date(2025, 3, 9)]}))
    statement = an.detect_statement(settings, model, data_start=data_start, data_end=data_end,
                                    run_date=run_date, xreg=True)
    inputs: list[str] = []
    _replace_calls(statement.sql, lambda query: inputs.append(query) or "t")
    (new_data,) = [q for q in inputs if q is not None]
    rows = bq.run(client, bq.Statement(new_data.strip()[1:-1], {
        k: v for k, v in statement.params.items() if f"@{k}" in new_data}))
    got = {(r.store_id, r.product_id, str(r.sale_date)): (r.units, round(r.price, 2), r.on_promotion)
           for r in rows.itertuples()}
    new_days = ["2025-03-03", "2025-03-04", "2025-03-05"]
    assert got == {
        ("S1", "P1", "2025-03-03"): (6.0, 2.2, 0),
        ("S1", "P1", "2025-03-04"): (0.0, 2.2, 1),  # no sales; the chain-wide plan covers the day
        ("S1", "P1", "2025-03-05"): (30.0, 2.2, 1),  # sold on promotion: the regular price stays
        **{("S2", "P1", d): (0.0, 2.5, int(d == "2025-03-04")) for d in new_days},
        **{("S3", "P2", d): (0.0, 3.0, 1) for d in new_days},
        **{("S4", "P3", d): (0.0, 0.8, 0) for d in new_days},
    }
    # The price a series carries into its new days is the one its last training day had.
    create = bq.create_model_statement(settings, model, data_start=data_start, data_end=data_end,
                                       horizon=63, xreg=True)
    trained = bq.run(client, bq.Statement(create.sql[create.sql.index(") AS\n") + len(") AS\n"):],
                                          create.params))
    last = trained[trained.sale_date.astype(str) == str(data_end)]
    assert {(r.store_id, round(r.price, 2)) for r in last.itertuples()} == {
        (s, p) for (s, _, d), (_, p, _) in got.items() if d == "2025-03-03" and s != "S1"} | {("S1", 2.0)}

    sent = detect_on_emulator_tables(client, dataset, monkeypatch)
    ts = "TIMESTAMP '{} 00:00:00+00'".format
    table = f"`{client.project}.{dataset}"
    client.query(f"""INSERT INTO {table}.ml_history_out` VALUES
        ('S1', 'P1', {ts('2025-02-28')}, 40, TRUE, 1, 11, 0.9999),
        ('S1', 'P1', {ts('2025-03-01')}, 5, FALSE, 1, 11, 0.3)""").result()
    client.query(f"""INSERT INTO {table}.ml_new_out` VALUES
        ('S1', 'P1', {ts('2025-03-04')}, 0, TRUE, 2, 12, 0.996),
        ('S3', 'P2', {ts('2025-03-05')}, 0, TRUE, 1, 5, 0.995)""").result()
    found = an.detect_anomalies_bigquery(client, settings, model_name=model, data_start=data_start,
                                         data_end=data_end, run_date=run_date, xreg=True)
    assert "last_regular_price" in sent[0] and model in sent[0]
    assert {(r.store_id, str(r.sale_date.date()), r.kind) for r in found.itertuples()} == {
        ("S1", "2025-02-28", "spike"), ("S1", "2025-03-04", "dip"), ("S3", "2025-03-05", "dip")}
    run_id = pipeline.start_run(wh, settings, run_date=run_date)
    pipeline.replace_run_rows(wh, "sales_anomalies", run_id, found, run_date)
    assert len(pipeline.read_run_rows(wh, "sales_anomalies", run_id)) == 3


def test_detect_rows_reader_rejects_rows_without_the_columns():
    with pytest.raises(ValueError, match="missing column"):
        an.read_detect_rows(pd.DataFrame({"store_id": ["S1"]}))
    empty = an.read_detect_rows(pd.DataFrame(columns=["store_id", "product_id", "sale_date", "units", "expected",
                                                      "lower_bound", "upper_bound", "anomaly_probability", "kind",
                                                      "on_promotion"]))
    assert empty.empty and list(empty.columns) == ANOMALY_COLUMNS


def detect_on_emulator_tables(client, dataset: str, monkeypatch) -> list[str]:
    """bqemulator does not compute ML.DETECT_ANOMALIES: its two calls in detect_anomalies.sql are
    replaced, the one on the training data by the table `ml_history_out` with the documented
    output columns, the one on new data by its own input query joined to `ml_new_out` (rows
    without a match get NULLs, as for a series the model does not know). Returns the SQL sent."""
    table = f"`{client.project}.{dataset}"
    columns = ("store_id STRING, product_id STRING, sale_date TIMESTAMP, units FLOAT64, is_anomaly BOOL, "
               "lower_bound FLOAT64, upper_bound FLOAT64, anomaly_probability FLOAT64")
    for name in ("ml_history_out", "ml_new_out"):
        client.query(f"CREATE TABLE IF NOT EXISTS {table}.{name}` ({columns})").result()
    real = an.detect_statement
    sent: list[str] = []

    def on_tables(*args, **kwargs):
        statement = real(*args, **kwargs)
        sent.append(statement.sql)

        def table_for(query):
            if query is None:
                return f"{table}.ml_history_out`"
            return (f"(SELECT q.store_id, q.product_id, TIMESTAMP(q.sale_date) AS sale_date, q.units, "
                    f"o.is_anomaly, o.lower_bound, o.upper_bound, o.anomaly_probability FROM {query} AS q "
                    f"LEFT JOIN {table}.ml_new_out` AS o ON o.store_id = q.store_id AND "
                    "o.product_id = q.product_id AND o.sale_date = TIMESTAMP(q.sale_date))")

        return type(statement)(_replace_calls(statement.sql, table_for), statement.params)

    monkeypatch.setattr(an, "detect_statement", on_tables)
    return sent
