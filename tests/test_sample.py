"""The sample chain generator: determinism, the input contract of the DDL, and realism."""

from __future__ import annotations

import re
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from retailopt import sample
from retailopt.sample import DC_PLACE, METRO_BBOX, generate_sample_chain, main

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "sql" / "schema"
INPUT_TABLES = ("stores", "distribution_centers", "products", "sales", "inventory", "vehicles", "promotions")
SMALL = dict(n_stores=4, n_products=12, days=120)
# Big enough for the realism checks (two Christmases, both Thanksgivings), still sub-second.
MEDIUM = dict(n_stores=8, n_products=48, days=400)
END = date(2026, 11, 21)


def ddl_columns(table: str) -> list[tuple[str, str, bool]]:
    """(name, type, not null) read straight from the DDL text, independent of retailopt.schema."""
    text = (SCHEMA_DIR / f"{table}.sql").read_text()
    body = text[text.index("(") + 1:text.index("\n)")]
    cols = []
    for line in body.splitlines():
        m = re.match(r"\s*([a-z_][a-z0-9_]*)\s+([A-Z0-9]+)(.*)", line)
        if m:
            cols.append((m.group(1), m.group(2), "NOT NULL" in m.group(3)))
    assert cols, table
    return cols


def read_table(paths: dict[str, Path], table: str) -> pd.DataFrame:
    if paths[table].suffix == ".parquet":
        return pd.read_parquet(paths[table])
    return pd.read_csv(paths[table], dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_sample_chain(tmp_path_factory.mktemp("small"), seed=7, **SMALL)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    paths = generate_sample_chain(tmp_path_factory.mktemp("medium"), seed=3, end_date=END, **MEDIUM)
    frames = {t: pd.read_csv(paths[t]) for t in INPUT_TABLES if t != "sales"}
    sales = pd.read_parquet(paths["sales"])
    sales["sale_date"] = pd.to_datetime(sales["sale_date"])
    frames["sales"] = sales.merge(frames["products"][["product_id", "category"]], on="product_id")
    return frames


def test_same_seed_gives_identical_files(tmp_path: Path, small: dict[str, Path]) -> None:
    again = generate_sample_chain(tmp_path, seed=7, **SMALL)
    assert set(again) == set(INPUT_TABLES)
    for table, path in small.items():
        assert path.read_bytes() == again[table].read_bytes(), table


@pytest.mark.parametrize("frequency", ["daily", "weekly"])
def test_blocks_of_stores_give_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              frequency: str) -> None:
    # Small row groups, so blocks end inside them and the writer has to carry rows over.
    monkeypatch.setattr(sample, "_ROW_GROUP", 700)
    whole = generate_sample_chain(tmp_path / "whole", seed=11, frequency=frequency, **MEDIUM)
    assert pq.ParquetFile(whole["sales"]).metadata.num_row_groups > 3
    for block in (1, 3):
        # More than one block: the units wait in a memory map on disk.
        parts = generate_sample_chain(tmp_path / f"b{block}", seed=11, frequency=frequency,
                                      block_stores=block, **MEDIUM)
        for table, path in whole.items():
            assert path.read_bytes() == parts[table].read_bytes(), (block, table)
        assert not list((tmp_path / f"b{block}").glob(".sample-*"))  # the memory map is gone
    with pytest.raises(ValueError, match="block_stores"):
        generate_sample_chain(tmp_path / "x", block_stores=0, **SMALL)


def test_memory_follows_the_block_not_the_chain(tmp_path: Path) -> None:
    from retailopt.sample.catalog import make_catalog
    from retailopt.sample.demand import simulate
    from retailopt.sample.network import make_stores

    n_stores, n_products, days = 40, 60, 400  # stores make most of the arrays
    calendar = [END - timedelta(days=days - 1 - i) for i in range(days)]

    def peak(block: int | None) -> tuple[int, np.ndarray]:
        rng = np.random.default_rng(2)
        _, size, tilt = make_stores(rng, n_stores)
        catalog = make_catalog(rng, n_products)
        units = None if block is None else np.lib.format.open_memmap(
            tmp_path / f"{block}.npy", mode="w+", dtype=np.int32, shape=(n_stores, n_products, days))
        # numpy reports its arrays to tracemalloc; a memory map is not on the heap.
        tracemalloc.start()
        try:
            demand = simulate(rng, catalog, size, tilt, calendar, "US", block_stores=block, units=units)
            return tracemalloc.get_traced_memory()[1], np.array(demand.units)
        finally:
            tracemalloc.stop()

    whole, units = peak(None)
    one, units_one = peak(1)
    assert one < 0.2 * whole
    assert np.array_equal(units, units_one)


def test_different_seed_gives_different_chain(tmp_path: Path, small: dict[str, Path]) -> None:
    other = generate_sample_chain(tmp_path, seed=8, **SMALL)
    for table in ("stores", "products", "inventory", "sales"):
        assert small[table].read_bytes() != other[table].read_bytes(), table


@pytest.mark.parametrize("table", INPUT_TABLES)
def test_columns_and_types_follow_the_ddl(small: dict[str, Path], table: str) -> None:
    cols = ddl_columns(table)
    path = small[table]
    if path.suffix == ".parquet":
        arrow = pq.read_schema(path)
        assert arrow.names == [c[0] for c in cols]
        expected = {"STRING": "string", "INT64": "int64", "FLOAT64": "double", "BOOL": "bool",
                    "DATE": "date32[day]"}
        assert [str(f.type) for f in arrow] == [expected[c[1]] for c in cols]
        df = pd.read_parquet(path)
        assert not df.isna().any().any()
        return
    header = path.read_text().splitlines()[0].split(",")
    assert header == [c[0] for c in cols]
    df = read_table(small, table)
    assert len(df) > 0
    checks = {
        "STRING": r".+",
        "INT64": r"-?\d+",
        "FLOAT64": r"-?\d+(\.\d+)?",
        "DATE": r"\d{4}-\d{2}-\d{2}",
        "TIME": r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d",
        "BOOL": r"true|false",
    }
    for name, kind, not_null in cols:
        values = df[name]
        if not not_null:
            values = values[values != ""]
        bad = values[~values.str.fullmatch(checks[kind])]
        assert bad.empty, f"{table}.{name} ({kind}): {bad.head().tolist()}"
        if kind == "DATE":
            pd.to_datetime(values, format="%Y-%m-%d")  # raises on an impossible date


def test_small_profile_is_a_consistent_chain(small: dict[str, Path]) -> None:
    stores, dcs = pd.read_csv(small["stores"]), pd.read_csv(small["distribution_centers"])
    products, vehicles = pd.read_csv(small["products"]), pd.read_csv(small["vehicles"])
    inventory, sales = pd.read_csv(small["inventory"]), pd.read_parquet(small["sales"])
    assert len(stores) == 4 and len(products) == 12 and stores["store_id"].is_unique
    assert products["product_id"].is_unique and products["name"].is_unique
    assert (dcs["lead_time_days"] == 2).all()
    assert set(vehicles["depot_id"]) <= set(dcs["dc_id"]) | set(stores["store_id"])
    assert len(vehicles) >= 2 and vehicles["capacity_units"].between(2000, 12000).all()
    assert (products["price"] > products["unit_cost"]).all()
    assert products["case_pack"].isin([1, 2, 4, 6, 12, 24]).all()
    assert (stores["receiving_open"] < stores["receiving_close"]).all()
    # Every store x product has a stock row; capacity leaves room above what is held.
    assert len(inventory) == 4 * 12
    assert not inventory.duplicated(["store_id", "product_id"]).any()
    assert (inventory["max_capacity"] > inventory["on_hand"]).all()
    assert (inventory[["on_hand", "on_order"]] >= 0).all().all()
    assert (inventory["snapshot_date"] == "2026-11-21").all()
    held = inventory.groupby("store_id")[["on_hand", "on_order"]].sum().sum(axis=1)
    assert (stores.set_index("store_id")["capacity_units"] >= held).all()
    # Only days with sales are rows, inside the requested window, no duplicate keys.
    assert (sales["units"] > 0).all()
    assert not sales.duplicated(["sale_date", "store_id", "product_id"]).any()
    assert sales["sale_date"].min() >= date(2026, 11, 21) - timedelta(days=119)
    assert sales["sale_date"].max() == date(2026, 11, 21)
    assert set(sales["store_id"]) == set(stores["store_id"])
    assert set(sales["product_id"]) == set(products["product_id"])
    # The product master carries today's regular price, the one sold at on the last day.
    last = sales[(sales["sale_date"] == date(2026, 11, 21)) & ~sales["on_promotion"]]
    listed = products.set_index("product_id")["price"]
    assert len(last) > 0
    assert np.allclose(last["price"].to_numpy(), listed.reindex(last["product_id"]).to_numpy())


def test_coordinates_lie_in_the_metro_area(medium: dict[str, pd.DataFrame]) -> None:
    south, west, north, east = METRO_BBOX
    places = pd.concat([medium["stores"], medium["distribution_centers"]])
    assert places["latitude"].between(south, north).all()
    assert places["longitude"].between(west, east).all()
    assert not places[["latitude", "longitude"]].duplicated().any()
    assert (medium["distribution_centers"]["name"] == DC_PLACE.name).all()
    assert medium["stores"]["region"].nunique() >= 2


def _series_stats(sales: pd.DataFrame, days: int) -> pd.DataFrame:
    g = sales.groupby(["store_id", "product_id"])["units"].agg(["count", "mean", "std"])
    g["zero_share"] = 1 - g["count"] / days
    g["adi"] = days / g["count"]
    g["cv2"] = (g["std"].fillna(0) / g["mean"]) ** 2
    return g


def test_demand_spans_smooth_to_lumpy(medium: dict[str, pd.DataFrame]) -> None:
    # Restrict to products sold over the whole window (launches would inflate ADI).
    sales = medium["sales"]
    first = sales.groupby("product_id")["sale_date"].min()
    full = first[first <= sales["sale_date"].min() + pd.Timedelta(days=30)].index
    g = _series_stats(sales[sales["product_id"].isin(full)], MEDIUM["days"])
    assert g["zero_share"].min() < 0.05 and g["zero_share"].max() > 0.85
    classes = np.select([(g.adi < 1.32) & (g.cv2 < 0.49), g.adi < 1.32, g.cv2 < 0.49],
                        ["smooth", "erratic", "intermittent"], "lumpy")
    counts = pd.Series(classes).value_counts()
    assert set(counts.index) == {"smooth", "erratic", "intermittent", "lumpy"}, counts
    assert (counts / counts.sum()).min() > 0.05, counts


def _daily_total(sales: pd.DataFrame, category: str | None = None) -> pd.Series:
    if category is not None:
        sales = sales[sales["category"] == category]
    return sales.groupby("sale_date")["units"].sum()


def test_weekly_seasonality(medium: dict[str, pd.DataFrame]) -> None:
    daily = _daily_total(medium["sales"])
    by_dow = daily.groupby(daily.index.dayofweek).median()
    assert by_dow[5] > 1.25 * by_dow[1]  # Saturday against Tuesday
    assert by_dow.max() / by_dow.min() > 1.25


def test_holidays_close_stores_and_move_demand(medium: dict[str, pd.DataFrame]) -> None:
    sales = medium["sales"]
    sold_on = set(sales["sale_date"].dt.date)
    for closed in (date(2025, 12, 25), date(2025, 11, 27)):  # Christmas Day, Thanksgiving
        assert closed not in sold_on
    assert date(2025, 12, 26) in sold_on
    grocery = _daily_total(sales, "grocery")
    # The day before Thanksgiving against the same weekday of the surrounding weeks.
    eve = pd.Timestamp(2025, 11, 26)
    usual = grocery.reindex([eve + pd.Timedelta(weeks=k) for k in (-3, -2, -1, 2, 3)]).mean()
    assert grocery[eve] > 1.3 * usual
    gifts = _daily_total(sales[sales["category"].isin(["toys", "electronics", "apparel"])])
    black_friday = pd.Timestamp(2025, 11, 28)
    usual_fri = gifts.reindex([black_friday + pd.Timedelta(weeks=k) for k in (-3, -2, -1)]).mean()
    assert gifts[black_friday] > 1.6 * usual_fri


def test_yearly_seasonality(medium: dict[str, pd.DataFrame]) -> None:
    sales = medium["sales"]
    month = sales["sale_date"].dt.month
    for category, peak, low in (("toys", [12], [2, 3, 9, 10]), ("garden", [5, 6], [1, 2, 11])):
        units = sales[sales["category"] == category].groupby(month)["units"].sum()
        days_in = sales.groupby(month)["sale_date"].nunique()
        rate = units / days_in
        assert rate[peak].mean() > 1.8 * rate[low].mean(), category


def test_promotions_raise_units(medium: dict[str, pd.DataFrame]) -> None:
    sales = medium["sales"]
    # Units per open day, zero days included: intermittent items react by selling more often.
    open_days = sales["sale_date"].nunique()
    promo_days = sales[sales["on_promotion"]].groupby("product_id")["sale_date"].nunique()
    assert len(promo_days) >= 5
    units = sales.groupby(["product_id", "on_promotion"])["units"].sum().unstack().reindex(promo_days.index)
    ratio = (units[True] / promo_days) / (units[False] / (open_days - promo_days))
    assert ratio.median() > 1.6 and (ratio > 1).mean() > 0.85, ratio
    promo_price = sales[sales["on_promotion"]].groupby("product_id")["price"].mean()
    regular_price = sales[~sales["on_promotion"]].groupby("product_id")["price"].mean()
    assert (promo_price < regular_price.reindex(promo_price.index)).all()


def test_price_changes_and_life_cycle(medium: dict[str, pd.DataFrame]) -> None:
    sales = medium["sales"]
    regular = sales[~sales["on_promotion"]].groupby("product_id")["price"].nunique()
    assert (regular > 1).sum() >= 3  # permanent price steps on some products
    span = sales.groupby("product_id")["sale_date"].agg(["min", "max"])
    start, end = sales["sale_date"].min(), sales["sale_date"].max()
    assert (span["min"] > start + pd.Timedelta(days=60)).any()  # launched during the history
    assert (span["max"] < end - pd.Timedelta(days=20)).any()  # discontinued


def test_stock_is_imbalanced_between_stores(medium: dict[str, pd.DataFrame]) -> None:
    sales, inventory = medium["sales"], medium["inventory"]
    recent = sales[sales["sale_date"] > sales["sale_date"].max() - pd.Timedelta(days=28)]
    rate = recent.groupby(["store_id", "product_id"])["units"].sum() / 28
    stock = inventory.set_index(["store_id", "product_id"])["on_hand"]
    cover = (stock.reindex(rate.index) / rate).rename("cover").reset_index()
    per_product = cover.groupby("product_id")["cover"].agg(["min", "max"])
    both = per_product[(per_product["min"] < 3) & (per_product["max"] > 45)]
    assert len(both) >= 0.1 * inventory["product_id"].nunique(), per_product
    assert (inventory["on_hand"] == 0).any()
    assert ((inventory["on_order"] > 0).mean() < 0.3) and (inventory["on_order"] > 0).any()


def test_planned_promotions_follow_the_history_circulars(medium: dict[str, pd.DataFrame]) -> None:
    plan = medium["promotions"]
    assert len(plan) >= 3 and plan["store_id"].isna().all()  # chain-wide, like the history's
    start, end = pd.to_datetime(plan["start_date"]), pd.to_datetime(plan["end_date"])
    assert (start > pd.Timestamp(END)).all() and (start <= pd.Timestamp(END + timedelta(days=28))).all()
    assert (start.dt.weekday == 2).all() and ((end - start).dt.days + 1).isin([7, 14]).all()
    sales = medium["sales"]
    promoted = set(sales.loc[sales["on_promotion"], "product_id"])
    # Only promotable products: every planned one was on promotion in two years of history.
    assert set(plan["product_id"]) <= promoted
    # A week apart from the product's last promotion in history, as the history keeps them.
    last = sales[sales["on_promotion"]].groupby("product_id")["sale_date"].max()
    gap = (start.to_numpy() - last.reindex(plan["product_id"]).to_numpy()).astype("timedelta64[D]").astype(int)
    assert (gap > 7).all()


def test_cli_writes_the_small_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--small", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "sales" in out and (tmp_path / "sales.parquet").exists()
    assert len(pd.read_csv(tmp_path / "stores.csv")) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{t}.parquet" if t == "sales" else f"{t}.csv" for t in INPUT_TABLES)  # no staging left over


def test_bad_arguments_are_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--stores", "1"]) == 2
    assert "n_stores" in capsys.readouterr().err
    with pytest.raises(ValueError, match="holiday_country"):
        generate_sample_chain(tmp_path, holiday_country="XX", **SMALL)
    with pytest.raises(ValueError, match="days"):
        generate_sample_chain(tmp_path, n_stores=3, n_products=5, days=10)


def test_other_holiday_calendar(tmp_path: Path) -> None:
    paths = generate_sample_chain(tmp_path, seed=1, n_stores=3, n_products=10, days=60,
                                  end_date=date(2026, 1, 10), holiday_country="DE")
    sold_on = set(pd.read_parquet(paths["sales"])["sale_date"])
    assert date(2025, 12, 25) not in sold_on and date(2025, 12, 27) in sold_on


def test_weekly_variant_sums_the_same_sales_into_weeks_ending_on_the_last_day(tmp_path: Path) -> None:
    daily = generate_sample_chain(tmp_path / "d", seed=4, n_stores=2, n_products=5, days=100)
    weekly = generate_sample_chain(tmp_path / "w", seed=4, n_stores=2, n_products=5, days=100, frequency="weekly")
    d = pd.read_parquet(daily["sales"])
    w = pd.read_parquet(weekly["sales"])
    w_dates = pd.to_datetime(w["sale_date"])
    end = pd.Timestamp(pd.to_datetime(d["sale_date"]).max())
    assert w_dates.max() == end and (w_dates.dt.dayofweek == end.dayofweek).all()
    # 100 days = 14 whole weeks; the two leading days of the partial first week are left out.
    assert w_dates.nunique() == 14
    kept = pd.to_datetime(d["sale_date"]) > end - pd.Timedelta(days=98)
    assert w["units"].sum() == d.loc[kept, "units"].sum()
    week = (w_dates == end)
    last7 = pd.to_datetime(d["sale_date"]) > end - pd.Timedelta(days=7)
    assert w.loc[week, "units"].sum() == d.loc[last7, "units"].sum()
    # The other files are the daily chain's.
    for name in ("stores", "products", "inventory", "vehicles"):
        assert Path(weekly[name]).read_bytes() == Path(daily[name]).read_bytes()
    with pytest.raises(ValueError, match="frequency"):
        generate_sample_chain(tmp_path / "x", n_stores=2, n_products=2, days=60, frequency="hourly")


def test_box_trucks_follow_the_driving_a_week_of_sales_takes() -> None:
    from retailopt.sample.network import TRUCK_UNITS, trucks_needed

    dc = (42.0, -88.0)
    # Four stores about 20 km east of the centre, receiving until 14:00.
    near = pd.DataFrame({"latitude": [42.0] * 4, "longitude": [-87.76] * 4, "receiving_close": ["14:00:00"] * 4})
    far = near.assign(longitude=-87.4)  # about 50 km
    week = np.full(4, 10 * TRUCK_UNITS)
    base = trucks_needed(near, week, *dc)
    # A round trip of 40 km at 35 km/h with two 10-minute visits is about 1.5 h; 40 of them in a day
    # that ends when the last delivery before 14:00 is back (about 8.7 h) need 7 trucks.
    assert base == 7
    assert trucks_needed(near, 2 * week, *dc) >= 2 * base - 1  # twice the volume, about twice the trucks
    assert trucks_needed(far, week, *dc) > 1.5 * base  # farther stores, longer trips
    # Earlier receiving closes leave each truck fewer trips.
    assert trucks_needed(near.assign(receiving_close="10:00:00"), week, *dc) > base
    assert trucks_needed(near, np.zeros(4), *dc) == 0
