"""`retailopt bench-pricing`: its arguments (the day's cost it measures with is exercised by
tests/test_transfer_pricing.py, which holds the pricing to it)."""

from __future__ import annotations

import pytest

from retailopt.benchmarks import pricing


def test_bench_pricing_refuses_fewer_than_one_solve(capsys):
    with pytest.raises(SystemExit) as raised:
        pricing.main(["--repeats", "0"])
    assert raised.value.code == 2 and "--repeats must be at least 1" in capsys.readouterr().err

