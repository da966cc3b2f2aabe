"""The sample chain's demand truth (sample/truth.py) and the replay's diagnostic `truth` forecaster."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from retailopt.config import Settings
from retailopt.replay import load_chain, run_replay, truth_forecast
from retailopt.sample import generate_sample_chain
from retailopt.sample.demand import NOISE_INTERMITTENT, NOISE_LUMPY, NOISE_NEGATIVE_BINOMIAL
from retailopt.sample.truth import TRUTH_FILE, TruthModel, read_truth

QUIET = {"log": lambda *a: None}
CHAIN = {"seed": 5, "n_stores": 3, "n_products": 40, "days": 150}


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    plain = tmp_path_factory.mktemp("plain")
    truth = tmp_path_factory.mktemp("truth")
    generate_sample_chain(plain, **CHAIN)
    generate_sample_chain(truth, **CHAIN, truth_days=35)
    return plain, truth


def test_truth_is_an_extra_file_and_leaves_the_chain_unchanged(chains: tuple[Path, Path]) -> None:
    plain, truth = chains
    assert not (plain / TRUTH_FILE).exists()
    for f in sorted(p.name for p in plain.iterdir()):
        assert (plain / f).read_bytes() == (truth / f).read_bytes(), f
    assert sorted(p.name for p in truth.iterdir()) == sorted([*(p.name for p in plain.iterdir()), TRUTH_FILE])
    table = pd.read_parquet(truth / TRUTH_FILE)
    assert len(table) == 3 * 40 * 35
    sales = pd.read_parquet(truth / "sales.parquet")
    last = pd.Timestamp(sales["sale_date"].max())
    assert pd.to_datetime(table["sale_date"]).max() == last
    assert pd.to_datetime(table["sale_date"]).min() == last - pd.Timedelta(days=34)
    # The expected units are the demand's mean: over 35 days x 120 positions the realised units
    # are within a few percent of them (the noise averages out), and per product near too.
    recent = sales[pd.to_datetime(sales["sale_date"]) > last - pd.Timedelta(days=35)]
    assert recent["units"].sum() == pytest.approx(table["expected_units"].sum(), rel=0.03)
    by_product = recent.groupby("product_id")["units"].sum()
    expected = table.groupby("product_id")["expected_units"].sum()
    big = expected[expected > 500].index
    assert len(big) > 5
    assert (by_product[big] / expected[big]).between(0.8, 1.2).all()
    assert set(table["noise"]) <= {"negative_binomial", "intermittent", "lumpy"}


def test_bad_truth_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="truth_days"):
        generate_sample_chain(tmp_path, **CHAIN, truth_days=-1)
    with pytest.raises(ValueError, match="daily"):
        generate_sample_chain(tmp_path, **CHAIN, truth_days=28, frequency="weekly")


def test_read_truth_aligns_to_positions_and_refuses_gaps(chains: tuple[Path, Path], tmp_path: Path) -> None:
    _, truth = chains
    keys = pd.read_csv(truth / "inventory.csv", dtype=str)[["store_id", "product_id"]].iloc[::-1]
    model = read_truth(truth / TRUTH_FILE, keys)
    table = pd.read_parquet(truth / TRUTH_FILE)
    s, p = keys.iloc[0]
    row = table[(table["store_id"] == s) & (table["product_id"] == p)].sort_values("sale_date")
    assert model.mean[0].tolist() == pytest.approx(row["expected_units"].tolist())
    extra = pd.concat([keys, pd.DataFrame({"store_id": ["nowhere"], "product_id": [p]})])
    with pytest.raises(ValueError, match="have no demand truth"):
        read_truth(truth / TRUTH_FILE, extra)
    table.iloc[1:].to_parquet(tmp_path / TRUTH_FILE)
    with pytest.raises(ValueError, match="one row per position and day"):
        read_truth(tmp_path / TRUTH_FILE, keys)


def _model(mean: np.ndarray, noise: list[int], dispersion: list[float], size_mean: list[float]) -> TruthModel:
    return TruthModel(mean=np.asarray(mean, dtype=float), first_day=pd.Timestamp("2026-03-01"),
                      noise=np.array(noise), dispersion=np.array(dispersion, dtype=float),
                      size_mean=np.array(size_mean, dtype=float))


def test_truth_forecast_gives_the_expected_demand_and_its_distribution() -> None:
    days = 14
    mean = np.array([np.full(days, 2.0),   # near-Poisson: NB with a huge size
                     np.full(days, 0.3),   # intermittent, sizes of exactly 1: a demand day is Bernoulli(0.3)
                     np.full(days, 1.2),   # lumpy: a demand of 1 + NB(0.6, mean 3) units with probability 0.3
                     np.linspace(1.0, 14.0, days)])  # NB with k = 2 and a rising mean
    model = _model(mean, [NOISE_NEGATIVE_BINOMIAL, NOISE_INTERMITTENT, NOISE_LUMPY, NOISE_NEGATIVE_BINOMIAL],
                   [1e9, 0.0, 0.6, 2.0], [0.0, 0.0, 3.0, 0.0])
    keys = pd.DataFrame({"store_id": ["A", "A", "B", "B"], "product_id": ["P", "Q", "P", "Q"]})
    window = np.array([5, 7, 7, 3])
    daily, prot = truth_forecast(model, window, keys, date(2026, 3, 3), 7, seed=1, draws=20_000)
    # Daily means are the model's own, from the start day on.
    assert daily["forecast_mean"].to_numpy().reshape(4, 7) == pytest.approx(mean[:, 2:9])
    assert prot["demand_mean"].tolist() == pytest.approx([10.0, 2.1, 8.4, mean[3, 2:5].sum()])
    p_lumpy = 0.3
    var_size = 3.0 + 9.0 / 0.6
    var_lumpy = p_lumpy * (var_size + 16.0) - 1.2 ** 2
    var_nb = (mean[3, 2:5] + mean[3, 2:5] ** 2 / 2.0).sum()
    assert prot["demand_std"].tolist() == pytest.approx(
        np.sqrt([10.0, 7 * 0.3 * 0.7, 7 * var_lumpy, var_nb]).tolist(), rel=1e-6)
    # Quantiles of the window sums: Poisson(10) and Binomial(7, 0.3) exactly (up to sampling).
    q = prot[["q50", "q80", "q90", "q95", "q99"]].to_numpy()
    levels = [0.5, 0.8, 0.9, 0.95, 0.99]
    assert q[0] == pytest.approx(stats.poisson.ppf(levels, 10.0), abs=1)
    assert q[1] == pytest.approx(stats.binom.ppf(levels, 7, 0.3), abs=1)
    assert (np.diff(q, axis=1) >= 0).all() and prot["model"].eq("truth").all()
    # Another start day draws from another stream, never from demand that happened.
    _, later = truth_forecast(model, window, keys, date(2026, 3, 4), 7, seed=1, draws=2_000)
    assert later["demand_mean"].tolist() == pytest.approx([10.0, 2.1, 8.4, mean[3, 3:6].sum()])


def test_truth_past_its_last_day_repeats_its_last_week() -> None:
    mean = np.arange(20, dtype=float)[None, :]
    model = _model(mean, [NOISE_NEGATIVE_BINOMIAL], [5.0], [0.0])
    got = model.expected(pd.Timestamp("2026-03-16"), 10)  # columns 15..24; 20.. repeat 13..19
    assert got[0].tolist() == [15, 16, 17, 18, 19, 13, 14, 15, 16, 17]
    with pytest.raises(ValueError, match="--truth-days"):
        model.expected(pd.Timestamp("2026-02-28"), 3)


def test_replay_offers_truth_only_when_the_chain_carries_it(chains: tuple[Path, Path]) -> None:
    plain, truth = chains
    assert load_chain(plain).truth_path is None
    with pytest.raises(ValueError, match="--truth-days"):
        run_replay(load_chain(plain), settings=Settings(), weeks=2, forecaster="truth",
                   strategies=("dc_only",), **QUIET)
    res = run_replay(load_chain(truth), settings=Settings(), weeks=2, forecaster="truth",
                     strategies=("dc_only", "policy_rebalance"), **QUIET)
    assert res["forecaster"].tolist() == ["truth", "truth"]
    assert (res["fill_rate"] > 0.8).all()
