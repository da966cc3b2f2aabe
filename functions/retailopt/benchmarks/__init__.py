"""The ``retailopt bench-*`` commands, kept apart from the domain code they measure.

Each module is one benchmark with a ``main(argv)``: ``run`` (bench-run), ``forecasting``
(bench-forecast), ``rebalance`` (bench-rebalance), ``routing`` (bench-routing), ``api``
(bench-api), ``faults`` (bench-faults), ``workbench`` (bench-workbench) and ``cost`` (the cloud
cost model, ``python -m retailopt.benchmarks.cost``). Nothing in the domain package imports them.
"""
