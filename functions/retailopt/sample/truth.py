"""The sample chain's true demand model, written beside its files on request: a diagnostic.

The generator draws each day's units around a known expected value (`demand.simulate`). With
`generate-sample --truth-days N` it also writes `demand_truth.parquet`: that expected value for
the last N days of every store x product, and per product the noise drawn around it. The
replay's `truth` forecaster (`retailopt replay --forecaster truth`) plans on it, to measure what
forecast *noise* alone costs a policy that does not know the future: the units that were sold
are not in the file, only their distribution.

Nothing in planning reads this file: a real chain has no such thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .demand import NOISE_INTERMITTENT, NOISE_LUMPY, NOISE_NEGATIVE_BINOMIAL, Demand

TRUTH_FILE = "demand_truth.parquet"
NOISE_NAMES = {NOISE_NEGATIVE_BINOMIAL: "negative_binomial", NOISE_INTERMITTENT: "intermittent",
               NOISE_LUMPY: "lumpy"}
_NOISE_CODES = {name: code for code, name in NOISE_NAMES.items()}


def truth_table(demand: Demand, days: list[date], store_ids: list[str], product_ids: list[str]) -> pa.Table:
    """One row per store x product x day of `demand.expected` (its last days): the expected
    units and the product's noise model. `noise` says how units are drawn around the mean m:
    negative_binomial: NB(size=dispersion, mean m); intermittent: a demand on the day with
    probability m / (1 + size_mean), of 1 + Poisson(size_mean) units; lumpy: the same
    occurrence, of 1 + NB(size=dispersion, mean size_mean) units."""
    if demand.noise is None:
        raise ValueError("this Demand carries no noise model")
    n_store, n_prod, w = demand.expected.shape
    day_col = np.asarray(days[-w:], dtype="datetime64[D]")
    s, p, t = (a.ravel() for a in np.meshgrid(np.arange(n_store), np.arange(n_prod), np.arange(w), indexing="ij"))
    return pa.table({
        "store_id": pa.array(np.asarray(store_ids, dtype=object)[s], pa.string()),
        "product_id": pa.array(np.asarray(product_ids, dtype=object)[p], pa.string()),
        "sale_date": pa.array(day_col[t]),
        "expected_units": pa.array(demand.expected.ravel()),
        "noise": pa.array(np.asarray([NOISE_NAMES[int(c)] for c in demand.noise], dtype=object)[p], pa.string()),
        "dispersion": pa.array(demand.dispersion[p].astype(np.float64)),
        "size_mean": pa.array(demand.size_mean[p].astype(np.float64)),
    })


def write_truth(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path, compression="zstd")
    return path


@dataclass(frozen=True)
class TruthModel:
    """The true demand model aligned to a replay's positions: expected units per position and day
    and each position's noise."""
    mean: np.ndarray  # (n, days) expected units
    first_day: pd.Timestamp  # the date of column 0
    noise: np.ndarray  # (n,) NOISE_* code
    dispersion: np.ndarray  # (n,)
    size_mean: np.ndarray  # (n,)

    def expected(self, start: pd.Timestamp, horizon: int) -> np.ndarray:
        """(n, horizon) expected units from `start` on. Days past the file's last day repeat its
        last week (the weekly pattern); days before its first are an error."""
        first = (pd.Timestamp(start).normalize() - self.first_day).days
        if first < 0:
            raise ValueError(f"the demand truth starts on {self.first_day.date()}, after {pd.Timestamp(start).date()}: "
                             f"generate the chain with a larger --truth-days")
        days = self.mean.shape[1]
        cols = np.arange(first, first + horizon)
        past = cols >= days
        if past.any():
            if days < 7:
                raise ValueError("the demand truth covers less than a week: cannot extend it past its last day")
            cols[past] = days - 7 + (cols[past] - days) % 7
        return self.mean[:, cols]

    def draw_window_sums(self, mean: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
        """(n, draws) samples of the units over each row's days, drawn like the generator draws
        them (`demand.simulate`) around `mean` ((n, days): expected units, NaN for days outside a
        row's window)."""
        n, w = mean.shape
        out = np.zeros((n, draws))
        for d in range(w):
            m = mean[:, d]
            live = np.isfinite(m) & (m > 0)
            nb = live & (self.noise == NOISE_NEGATIVE_BINOMIAL)
            if nb.any():
                k = np.repeat(self.dispersion[nb, None], draws, axis=1)
                mm = np.repeat(m[nb, None], draws, axis=1)
                out[nb] += rng.negative_binomial(k, k / (k + mm))
            occ = live & (self.noise != NOISE_NEGATIVE_BINOMIAL)
            if occ.any():
                sm = self.size_mean[occ]
                p_occ = np.clip(m[occ] / (1.0 + sm), 0.0, 1.0)
                hit = rng.random((occ.sum(), draws)) < p_occ[:, None]
                size = np.ones((occ.sum(), draws))
                lumpy = self.noise[occ] == NOISE_LUMPY
                if (~lumpy).any():
                    size[~lumpy] += rng.poisson(np.repeat(sm[~lumpy, None], draws, axis=1))
                if lumpy.any():
                    k = np.repeat(self.dispersion[occ][lumpy, None], draws, axis=1)
                    s = np.repeat(sm[lumpy, None], draws, axis=1)
                    size[lumpy] += rng.negative_binomial(k, k / (k + s))
                out[occ] += hit * size
        return out


def read_truth(path: Path, keys: pd.DataFrame) -> TruthModel:
    """The truth file aligned to `keys` (store_id, product_id). Every position must be in it,
    on every day from its first to its last."""
    t = pd.read_parquet(path)
    missing = {"store_id", "product_id", "sale_date", "expected_units", "noise", "dispersion", "size_mean"} - set(t.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    unknown = set(t["noise"].unique()) - set(_NOISE_CODES)
    if unknown:
        raise ValueError(f"{path}: unknown noise {sorted(unknown)}; expected {sorted(_NOISE_CODES)}")
    t["sale_date"] = pd.to_datetime(t["sale_date"]).dt.normalize()
    first, last = t["sale_date"].min(), t["sale_date"].max()
    n_days = (last - first).days + 1
    pos = keys[["store_id", "product_id"]].astype(str).reset_index(drop=True).reset_index(names="row")
    t = t.astype({"store_id": str, "product_id": str}).merge(pos, on=["store_id", "product_id"], how="inner")
    absent = len(pos) - t["row"].nunique()
    if absent:
        raise ValueError(f"{path}: {absent} of {len(pos)} store x product positions have no demand truth")
    if len(t) != len(pos) * n_days:
        raise ValueError(f"{path}: expected one row per position and day from {first.date()} to {last.date()}")
    mean = np.full((len(pos), n_days), np.nan)
    mean[t["row"].to_numpy(), (t["sale_date"] - first).dt.days.to_numpy()] = t["expected_units"].to_numpy(dtype=float)
    if np.isnan(mean).any():
        raise ValueError(f"{path}: some positions lack a day between {first.date()} and {last.date()}")
    per = t.drop_duplicates("row").set_index("row").sort_index()
    return TruthModel(mean=mean, first_day=first, noise=per["noise"].map(_NOISE_CODES).to_numpy(dtype=np.int64),
                      dispersion=per["dispersion"].to_numpy(dtype=float), size_mean=per["size_mean"].to_numpy(dtype=float))
