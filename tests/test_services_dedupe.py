import threading
from datetime import datetime, timedelta, timezone

import pytest

from retailopt.services.dedupe import KeyKind, Ledger
from retailopt.warehouse.duck import DuckDBWarehouse


@pytest.fixture()
def ledger(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb", "retailopt")
    warehouse.ensure_schema()
    yield Ledger(warehouse, lease_s=60)
    warehouse.close()


def test_concurrent_claims_have_one_winner(ledger):
    results = []
    barrier = threading.Barrier(8)

    def claim():
        barrier.wait()
        results.append(ledger.claim("event:s/1", KeyKind.EVENT_ID, "forecast", run_id="r1"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(c.won for c in results) == 1
    assert all(c.status == "IN_PROGRESS" for c in results)


def test_done_is_final_retry_is_reclaimable(ledger):
    first = ledger.claim("k", KeyKind.BUSINESS_KEY, "plan")
    ledger.finish(first, "RETRY", outcome="TimeoutError")
    second = ledger.claim("k", KeyKind.BUSINESS_KEY, "plan")
    assert second.won and second.attempts == 2 and second.outcome == "TimeoutError"
    ledger.finish(second, "DONE", run_id="r9")
    third = ledger.claim("k", KeyKind.BUSINESS_KEY, "plan")
    assert not third.won and third.status == "DONE" and third.run_id == "r9"
    # A stale token cannot overwrite the winner's record.
    ledger.finish(first, "REJECTED", outcome="late")
    assert ledger.get("k")["status"] == "DONE"


def test_expired_lease_is_taken_over_and_survives_reopen(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(path, "retailopt")
    warehouse.ensure_schema()
    ledger = Ledger(warehouse, lease_s=60)
    start = datetime.now(timezone.utc)
    held = ledger.claim("k", KeyKind.EVENT_ID, "import", now=start)
    assert not ledger.claim("k", KeyKind.EVENT_ID, "import", now=start + timedelta(seconds=30)).won
    warehouse.close()
    # After a restart the claim is still there; once its lease ends another delivery takes it.
    warehouse = DuckDBWarehouse(path, "retailopt")
    ledger = Ledger(warehouse, lease_s=60)
    late = ledger.claim("k", KeyKind.EVENT_ID, "import", now=start + timedelta(seconds=61))
    assert held.won and late.won and late.attempts == 2
    warehouse.close()


def test_the_same_claim_statements_run_on_bigquery(bqemu_client):
    """The MERGE the cloud runs, against bqemulator: first claim wins, a second does not, DONE is final."""
    import uuid

    from retailopt.warehouse.bigquery import BigQueryWarehouse

    warehouse = BigQueryWarehouse(bqemu_client, project=bqemu_client.project, dataset=f"t_{uuid.uuid4().hex[:8]}")
    warehouse.ensure_schema()
    ledger = Ledger(warehouse)
    first = ledger.claim("event:s/42", KeyKind.EVENT_ID, "plan", chain_id="acme", run_id="r1")
    second = ledger.claim("event:s/42", KeyKind.EVENT_ID, "plan", chain_id="acme", run_id="r1")
    assert first.won and not second.won and second.status == "IN_PROGRESS"
    ledger.finish(first, "RETRY", outcome="boom")
    third = ledger.claim("event:s/42", KeyKind.EVENT_ID, "plan")
    assert third.won and third.attempts == 2
    ledger.finish(third, "DONE", run_id="r1")
    assert ledger.get("event:s/42")["status"] == "DONE"
