"""Planned promotions as the local engine's plan: date ranges expanded to promoted days."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd


def promotion_days(promotions: pd.DataFrame, positions: pd.DataFrame, start: date, horizon: int) -> pd.DataFrame:
    """Expand planned promotions to the engine's plan: one row per position and promoted day of
    [start, start + horizon); a NULL store_id covers every store selling the product."""
    columns = ["store_id", "product_id", "sale_date", "on_promotion"]
    if promotions.empty:
        return pd.DataFrame(columns=columns)
    first, last = pd.Timestamp(start), pd.Timestamp(start) + pd.Timedelta(days=horizon - 1)
    promos = promotions.assign(
        start_date=pd.to_datetime(promotions["start_date"]).clip(lower=first),
        end_date=pd.to_datetime(promotions["end_date"]).clip(upper=last))
    promos = promos[promos["start_date"] <= promos["end_date"]]
    pos = positions[["store_id", "product_id"]].astype(str).drop_duplicates()
    chain = promos["store_id"].isna()
    matched = pd.concat([
        promos[chain].drop(columns="store_id").astype({"product_id": str}).merge(pos, on="product_id"),
        promos[~chain].astype({"store_id": str, "product_id": str}).merge(pos, on=["store_id", "product_id"]),
    ], ignore_index=True)
    if matched.empty:
        return pd.DataFrame(columns=columns)
    lengths = (matched["end_date"] - matched["start_date"]).dt.days.to_numpy() + 1
    rows = matched.loc[matched.index.repeat(lengths)]
    offsets = np.concatenate([np.arange(n) for n in lengths])
    out = pd.DataFrame({"store_id": rows["store_id"].to_numpy(), "product_id": rows["product_id"].to_numpy(),
                        "sale_date": rows["start_date"].to_numpy() + offsets.astype("timedelta64[D]"),
                        "on_promotion": True})
    return out.drop_duplicates(["store_id", "product_id", "sale_date"]).reset_index(drop=True)
