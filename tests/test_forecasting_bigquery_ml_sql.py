"""The BigQuery ML statements as BigQuery reads them: every statement parses (sqlglot's BigQuery
dialect), each CREATE MODEL option is one the BigQuery ML reference documents for its model type,
and the ML table functions get the arguments their reference gives, in its order.

bqemulator records CREATE MODEL without training and computes no ML function, so this is where
the statements' BigQuery ML side is checked; tests/test_forecasting_bigquery_ml.py runs their
plain-SQL side on the emulator.
"""

from __future__ import annotations

import dataclasses

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.bigquery import BigQuery
from sqlglot.tokens import TokenType

from retailopt import sqlfiles
from retailopt.config import ConfigError, Settings
from retailopt.forecasting import bigquery_ml as bq

# OPTIONS of CREATE MODEL per model type, as the syntax of each reference page lists them
# (model_option_list), read 2026-04:
# https://docs.cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-create-time-series
ARIMA_PLUS_OPTIONS = frozenset({
    "model_type", "time_series_timestamp_col", "time_series_data_col", "time_series_id_col", "horizon",
    "auto_arima", "auto_arima_max_order", "auto_arima_min_order", "non_seasonal_order", "data_frequency",
    "include_drift", "holiday_region", "clean_spikes_and_dips", "adjust_step_changes",
    "time_series_length_fraction", "min_time_series_length", "max_time_series_length",
    "trend_smoothing_window_size", "decompose_time_series", "forecast_limit_lower_bound",
    "forecast_limit_upper_bound", "seasonalities", "hierarchical_time_series_cols", "kms_key_name",
})
# https://docs.cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-create-multivariate-time-series
# (no decompose_time_series, forecast_limit_*, seasonalities or hierarchical_time_series_cols;
# l2_reg and the Vertex AI registry options instead)
ARIMA_PLUS_XREG_OPTIONS = frozenset({
    "model_type", "time_series_timestamp_col", "time_series_data_col", "time_series_id_col", "horizon",
    "auto_arima", "auto_arima_max_order", "auto_arima_min_order", "non_seasonal_order", "data_frequency",
    "include_drift", "holiday_region", "clean_spikes_and_dips", "adjust_step_changes",
    "time_series_length_fraction", "min_time_series_length", "max_time_series_length",
    "trend_smoothing_window_size", "l2_reg", "model_registry", "vertex_ai_model_id",
    "vertex_ai_model_version_aliases", "kms_key_name",
})
ALLOWED_OPTIONS = {"ARIMA_PLUS": ARIMA_PLUS_OPTIONS, "ARIMA_PLUS_XREG": ARIMA_PLUS_XREG_OPTIONS}
# DATA_FREQUENCY values, both pages.
DATA_FREQUENCIES = {"AUTO_FREQUENCY", "PER_MINUTE", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "YEARLY"}
# The table functions' signatures (the STRUCT's fields; the table argument after the STRUCT for
# ARIMA_PLUS_XREG models, required there):
# https://docs.cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-forecast
# https://docs.cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-explain-forecast
# https://docs.cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-arima-evaluate
# and the ARIMA_PLUS_XREG tutorial's ML.FORECAST / ML.EXPLAIN_FORECAST(MODEL m, STRUCT(...), (query))
# (an older copy of the ML.FORECAST page put the table before the STRUCT; its current page, this
# tutorial and ML.EXPLAIN_FORECAST's page put it after):
# https://cloud.google.com/bigquery/docs/arima-plus-xreg-single-time-series-forecasting-tutorial
STRUCT_FIELDS = {"ML.FORECAST": {"horizon", "confidence_level"},
                 "ML.EXPLAIN_FORECAST": {"horizon", "confidence_level"},
                 "ML.ARIMA_EVALUATE": {"show_all_candidate_models"}}
ID_COLUMNS = ["store_id", "product_id"]
TRAINED_ON = dt.date(2025, 3, 2)
RUN_DATE = dt.date(2025, 3, 6)


class BigQueryML(BigQuery):
    """sqlglot 30.11's BigQuery dialect, plus the two BigQuery ML table functions it does not know
    (ML.EXPLAIN_FORECAST, ML.ARIMA_EVALUATE) and ML.FORECAST's ARIMA_PLUS_XREG form with the
    table after the STRUCT (it knows `MODEL m[, table], STRUCT(...)` only). The three are parsed
    as the references write them: MODEL <name>, then STRUCT(...) or [TABLE] <table or (query)>
    arguments; everything else, the queries inside included, is sqlglot's own parser."""

    class Parser(BigQuery.Parser):
        FUNCTION_PARSERS = {
            **BigQuery.Parser.FUNCTION_PARSERS,
            "FORECAST": lambda self: self._parse_ml_table_function("ML.FORECAST"),
            "EXPLAIN_FORECAST": lambda self: self._parse_ml_table_function("ML.EXPLAIN_FORECAST"),
            "ARIMA_EVALUATE": lambda self: self._parse_ml_table_function("ML.ARIMA_EVALUATE"),
        }

        def _parse_ml_table_function(self, name: str) -> exp.Expression:
            if not self._match_text_seq("MODEL"):
                self.raise_error(f"{name} takes MODEL <name> first")
            args: list[exp.Expression | None] = [self._parse_table_parts()]
            while self._match(TokenType.COMMA):
                if self._match(TokenType.STRUCT, advance=False):
                    args.append(self._parse_bitwise())
                else:
                    self._match(TokenType.TABLE)
                    args.append(self._parse_table())
            if any(a is None for a in args):
                self.raise_error(f"{name}: an argument is not a STRUCT, a table or a query")
            return exp.Anonymous(this=name, expressions=args)


def _settings() -> Settings:
    return Settings(dataset="retail", project="acme-retail-prod", horizon_days=28, holiday_country="fr")


def _version(xreg: bool) -> bq.ModelVersion:
    return bq.ModelVersion(chain_id="acme", model_name=bq.model_name("acme", TRAINED_ON, xreg=xreg),
                           model_type="ARIMA_PLUS_XREG" if xreg else "ARIMA_PLUS", trained_on=TRAINED_ON,
                           data_start=dt.date(2023, 3, 3), data_end=dt.date(2025, 3, 1), horizon=63,
                           job_id="j", job_location="EU", state="DONE",
                           submitted_at=dt.datetime(2025, 3, 2, tzinfo=dt.timezone.utc))


def _create(xreg: bool) -> bq.Statement:
    v = _version(xreg)
    return bq.create_model_statement(_settings(), v.model_name, data_start=v.data_start, data_end=v.data_end,
                                     horizon=v.horizon, xreg=xreg)


def _statements() -> dict[str, bq.Statement]:
    s = _settings()
    out = {"create_model": _create(False), "create_model_xreg": _create(True)}
    for xreg in (False, True):
        v, suffix = _version(xreg), "_xreg" if xreg else ""
        out["forecast" + suffix] = bq.forecast_statement(s, v, RUN_DATE)
        out["explain_forecast" + suffix] = bq.explain_statement(s, v, RUN_DATE, 28)
        out["arima_evaluate" + suffix] = bq.evaluate_statement(s, v.model_name)
        out["record_diagnostics" + suffix] = bq.diagnostics_statement(s, v)
    out["future_features"] = bq.features_statement(s, _version(True), RUN_DATE)
    out["promoted_days"] = bq.promoted_days_statement(s, _version(True), RUN_DATE)
    for name in ("promotion_use",):
        out[name] = bq.Statement(sqlfiles.render(sqlfiles.read_sql(f"forecasting/{name}.sql"), s.dataset), {})
    for name in ("model_versions", "running_trainings", "finish_training", "last_sale_before"):
        out["queries/" + name] = bq.Statement(sqlfiles.render(sqlfiles.read_sql(f"queries/{name}.sql"), s.dataset), {})
    return out


def _parse(sql: str) -> exp.Expression:
    trees = [t for t in sqlglot.parse(sql, read=BigQueryML) if t is not None]
    assert len(trees) == 1, sql
    return trees[0]


def _options(create: exp.Create) -> dict[str, exp.Expression]:
    props = create.args["properties"]
    return {p.name.lower(): p.args["value"] for p in props.expressions if isinstance(p, exp.Property)}


def undocumented_options(sql: str) -> list[str]:
    """OPTIONS keys of a CREATE MODEL statement that its model type's reference does not list."""
    create = _parse(sql)
    assert isinstance(create, exp.Create) and create.kind == "MODEL"
    options = _options(create)
    model_type = options["model_type"].this.upper()
    return sorted(set(options) - ALLOWED_OPTIONS[model_type])


def _ml_calls(tree: exp.Expression) -> list[exp.Anonymous]:
    return [a for a in tree.find_all(exp.Anonymous) if str(a.this).startswith("ML.")]


# --- parsing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(_statements()))
def test_every_statement_parses_as_bigquery_sql(name):
    statement = _statements()[name]
    tree = _parse(statement.sql)
    uses_ml = bool(_ml_calls(tree)) or isinstance(tree, exp.Create)
    if not uses_ml:
        # Plain GoogleSQL: sqlglot's BigQuery dialect as it comes, no extension.
        assert sqlglot.parse_one(statement.sql, read="bigquery") is not None
    # Values are query parameters; only validated names are spliced in.
    assert "{" not in statement.sql and "2025-03" not in statement.sql


def test_every_statement_of_the_engine_is_checked():
    source = Path(bq.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'"(?:forecasting|queries)/([a-z_]+)\.sql"', source))
    used |= set(re.findall(r'query_file\(wh, "([a-z_]+)"', source))
    checked = {name.split("/")[-1] for name in _statements()}
    assert used and used <= checked, used - checked


def test_the_extension_parses_only_what_the_references_write():
    with pytest.raises(sqlglot.errors.ParseError):
        _parse("SELECT * FROM ML.EXPLAIN_FORECAST(`d.m`, STRUCT(3 AS horizon))")  # MODEL missing
    with pytest.raises(sqlglot.errors.ParseError):
        _parse("SELECT * FROM ML.ARIMA_EVALUATE(MODEL `d.m`, 3 + )")


# --- CREATE MODEL options -------------------------------------------------------------------------

@pytest.mark.parametrize("xreg", [False, True], ids=["ARIMA_PLUS", "ARIMA_PLUS_XREG"])
def test_create_model_options_are_documented_for_the_model_type(xreg):
    statement = _create(xreg)
    assert undocumented_options(statement.sql) == []
    options = _options(_parse(statement.sql))
    assert options["model_type"].this == ("ARIMA_PLUS_XREG" if xreg else "ARIMA_PLUS")
    # One series per store x product, each fitted by auto.ARIMA (required for many series).
    assert [e.this for e in options["time_series_id_col"].expressions] == ID_COLUMNS
    assert options["auto_arima"].this is True and "non_seasonal_order" not in options
    assert options["data_frequency"].this in DATA_FREQUENCIES and options["data_frequency"].this == "DAILY"
    assert statement.params["step_days"] == 1 and statement.params["step_months"] == 0
    assert options["holiday_region"].this == "FR" and options["holiday_region"].this in bq.HOLIDAY_REGIONS
    assert int(options["horizon"].this) == 63 <= bq.MAX_HORIZON
    # ML.EXPLAIN_FORECAST needs the decomposition of an ARIMA_PLUS model; the option does not
    # exist for ARIMA_PLUS_XREG (which ML.EXPLAIN_FORECAST decomposes anyway).
    assert ("decompose_time_series" in options) is (not xreg)
    # Zero-sales days must stay in training: no lower forecast limit (reads clip at zero).
    assert "forecast_limit_lower_bound" not in options


@pytest.mark.parametrize("setting, option, steps, horizon", [
    ("weekly", "WEEKLY", (7, 0), 9), ("W-FRI", "WEEKLY", (7, 0), 9), ("monthly", "MONTHLY", (0, 1), 3),
    ("QS", "QUARTERLY", (0, 3), 1), ("auto", "DAILY", (1, 0), 63)])
@pytest.mark.parametrize("xreg", [False, True], ids=["ARIMA_PLUS", "ARIMA_PLUS_XREG"])
def test_data_frequency_sets_the_option_the_gap_filling_grid_and_the_horizon_in_periods(xreg, setting, option, steps,
                                                                                       horizon):
    v = _version(xreg)
    settings = dataclasses.replace(_settings(), data_frequency=setting)
    statement = bq.create_model_statement(settings, v.model_name, data_start=v.data_start, data_end=v.data_end,
                                          horizon=v.horizon, xreg=xreg)
    assert undocumented_options(statement.sql) == []
    options = _options(_parse(statement.sql))
    assert options["data_frequency"].this == option in DATA_FREQUENCIES
    assert (statement.params["step_days"], statement.params["step_months"]) == steps
    # model_versions keeps the 63 days the model covers; the option counts periods.
    assert v.horizon == 63 and int(options["horizon"].this) == horizon


def test_the_allow_list_check_catches_an_option_of_the_other_model_type():
    xreg = _create(True).sql
    broken = xreg.replace("adjust_step_changes = TRUE", "adjust_step_changes = TRUE,\n  decompose_time_series = TRUE")
    assert broken != xreg and undocumented_options(broken) == ["decompose_time_series"]
    plain = _create(False).sql.replace("auto_arima = TRUE", "auto_arima = TRUE,\n  l2_reg = 0.1")
    assert undocumented_options(plain) == ["l2_reg"]


@pytest.mark.parametrize("xreg", [False, True], ids=["ARIMA_PLUS", "ARIMA_PLUS_XREG"])
def test_training_query_has_the_columns_the_options_name(xreg):
    create = _parse(_create(xreg).sql)
    options = _options(create)
    columns = create.expression.named_selects
    named = [options["time_series_timestamp_col"].this, options["time_series_data_col"].this]
    regressors = [c for c in columns if c not in ID_COLUMNS + named]
    assert set(named + ID_COLUMNS) <= set(columns)
    assert regressors == (["price", "on_promotion"] if xreg else [])


# --- ML table functions ---------------------------------------------------------------------------

@pytest.mark.parametrize("xreg", [False, True], ids=["ARIMA_PLUS", "ARIMA_PLUS_XREG"])
@pytest.mark.parametrize("kind", ["forecast", "explain_forecast", "arima_evaluate"])
def test_ml_functions_get_their_documented_arguments(kind, xreg):
    name = "ML." + kind.upper()
    statement = _statements()[kind + ("_xreg" if xreg else "")]
    calls = _ml_calls(_parse(statement.sql))
    assert [c.this for c in calls] == [name]
    model, *args = calls[0].expressions
    assert isinstance(model, exp.Table) and model.name == _version(xreg).model_name and model.db == "retail"
    assert isinstance(args[0], exp.Struct)
    fields = {e.alias_or_name.lower() for e in args[0].expressions}
    assert fields <= STRUCT_FIELDS[name] and fields
    if kind == "arima_evaluate" or not xreg:
        assert len(args) == 1
        return
    # ARIMA_PLUS_XREG: the future regressors after the STRUCT, with the model's column names.
    assert len(args) == 2 and isinstance(args[1], exp.Subquery)
    features = args[1].this.named_selects
    create = _parse(_create(True).sql)
    assert set(features) == set(create.expression.named_selects) - {"units"}
    assert statement.params["data_end"] == dt.date(2025, 3, 1)


@pytest.mark.parametrize("xreg", [False, True], ids=["ARIMA_PLUS", "ARIMA_PLUS_XREG"])
def test_diagnostics_are_inserted_from_ml_arima_evaluate_with_every_column(xreg):
    """record_diagnostics.sql: one INSERT ... SELECT from ML.ARIMA_EVALUATE, a value for every
    model_diagnostics column, every value a parameter or a column of the function's output."""
    from retailopt import schema

    statement = _statements()["record_diagnostics" + ("_xreg" if xreg else "")]
    tree = _parse(statement.sql)
    assert isinstance(tree, exp.Insert)
    columns = [c.name for c in tree.this.expressions]
    assert columns == schema.table("model_diagnostics").column_names
    assert len(tree.expression.expressions) == len(columns)
    assert [c.this for c in _ml_calls(tree)] == ["ML.ARIMA_EVALUATE"]
    assert set(statement.params) == {"model_name", "trained_on", "kind"}
    assert statement.params["kind"] == ("ARIMA_XREG" if xreg else "ARIMA")
    assert {p.name for p in tree.find_all(exp.Parameter)} | set(re.findall(r"@(\w+)", statement.sql)) == set(
        statement.params)


def test_forecast_horizon_reaches_the_end_of_the_run_from_the_training_data():
    for xreg in (False, True):
        statement = _statements()["forecast" + ("_xreg" if xreg else "")]
        # Forecasts start on 2025-03-02 (after the data); the run of 03-06 needs 4 + 28 days.
        assert statement.params["horizon"] == 4 + 28
    too_old = _version(False)
    with pytest.raises(bq.ModelUnavailable, match="retrain"):
        bq.forecast_statement(_settings(), too_old, too_old.data_end + dt.timedelta(days=37))
    with pytest.raises(bq.ModelUnavailable):
        bq.forecast_statement(_settings(), too_old, too_old.data_end)


# --- names ----------------------------------------------------------------------------------------

def test_model_names_and_job_ids():
    assert bq.model_name("acme", TRAINED_ON) == "arima_acme_20250302"
    assert bq.model_name("acme", TRAINED_ON, xreg=True) == "arimax_acme_20250302"
    assert bq.parse_model_name("arimax_acme_20250302") == (TRAINED_ON, True)
    assert bq.parse_model_name("arima_x_acme_20250302") == (TRAINED_ON, False)
    assert bq.parse_model_name("demand_arima_20250302") is None
    dashed, underscored = bq.model_name("north-east", TRAINED_ON), bq.model_name("north_east", TRAINED_ON)
    assert dashed != underscored and bq.parse_model_name(dashed) == (TRAINED_ON, False)
    job = bq.training_job_id("retail", "north-east", TRAINED_ON, 1)
    assert job == bq.training_job_id("retail", "north-east", TRAINED_ON, 1) != bq.training_job_id(
        "retail", "north-east", TRAINED_ON, 2)
    assert bq.training_job_id("other", "north-east", TRAINED_ON, 1) != job
    for bad in ("x`; DROP TABLE t; --", "a/b", ""):
        with pytest.raises(ConfigError):
            bq.model_name(bad, TRAINED_ON)
    with pytest.raises(ConfigError):
        bq.create_model_statement(_settings(), "arimax_acme_20250302", data_start=TRAINED_ON,
                                  data_end=TRAINED_ON, horizon=30, xreg=False)
    with pytest.raises(ConfigError):
        bq.evaluate_statement(_settings(), "x`; DROP TABLE t; --")
    with pytest.raises(ConfigError):
        bq.holiday_region(Settings(holiday_country="Atlantis"))

