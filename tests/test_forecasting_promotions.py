"""Planned promotions expanded to the engine's plan."""

from __future__ import annotations

import pandas as pd

from retailopt.forecasting.promotions import promotion_days


def test_promotion_days_expand_chain_wide_and_store_promotions_within_the_horizon():
    positions = pd.DataFrame({"store_id": ["S1", "S2", "S1"], "product_id": ["P1", "P1", "P2"]})
    promotions = pd.DataFrame({"store_id": [None, "S1", "S1"], "product_id": ["P1", "P2", "P3"],
                               "start_date": pd.to_datetime(["2026-11-20", "2026-12-01", "2026-11-23"]),
                               "end_date": pd.to_datetime(["2026-11-23", "2026-12-31", "2026-11-24"])})
    plan = promotion_days(promotions, positions, pd.Timestamp("2026-11-22").date(), 14)
    days = set(zip(plan.store_id, plan.product_id, plan.sale_date.dt.strftime("%m-%d")))
    # P1 everywhere on the two horizon days; P2 only in S1, cut at the horizon; P3 is not stocked.
    expected = {("S1", "P1", "11-22"), ("S2", "P1", "11-22"), ("S1", "P1", "11-23"), ("S2", "P1", "11-23")}
    expected |= {("S1", "P2", f"12-{d:02d}") for d in range(1, 6)}
    assert days == expected and plan.on_promotion.all()
