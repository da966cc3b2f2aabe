"""The dedupe ledger: at-least-once deliveries become one piece of work.

Each delivery claims two keys in `processed_events`: the CloudEvent id (the platform's retry of
one message) and the business key (chain, run date, step, run id: the same request published
again). A claim is one MERGE statement, atomic in BigQuery; the embedded warehouse runs it inside
its transaction, which holds the adapter's process-wide lock. The row then tells the caller
whether its random token won. Keeping the ledger in the warehouse makes it survive restarts and
shared by every instance.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd

_CLAIM_SQL = """
MERGE `{dataset}.processed_events` AS t
USING (SELECT @event_key AS event_key) AS s
ON t.event_key = s.event_key
WHEN NOT MATCHED THEN
  INSERT (event_key, key_kind, step, chain_id, run_id, status, claim_token, attempts, claimed_at, lease_until)
  VALUES (@event_key, @key_kind, @step, @chain_id, @run_id, 'IN_PROGRESS', @token, 1, @now, @lease_until)
WHEN MATCHED AND (t.status = 'RETRY' OR (t.status = 'IN_PROGRESS' AND t.lease_until < @now)) THEN
  UPDATE SET status = 'IN_PROGRESS', claim_token = @token, attempts = t.attempts + 1,
             claimed_at = @now, lease_until = @lease_until
"""

_READ_SQL = """
SELECT event_key, status, claim_token, attempts, run_id, outcome
FROM `{dataset}.processed_events`
WHERE event_key = @event_key
"""

_FINISH_SQL = """
UPDATE `{dataset}.processed_events`
SET status = @status, finished_at = @now, outcome = @outcome, run_id = COALESCE(@run_id, run_id)
WHERE event_key = @event_key AND claim_token = @token
"""


class KeyKind(str, enum.Enum):
    EVENT_ID = "EVENT_ID"
    BUSINESS_KEY = "BUSINESS_KEY"


@dataclass(frozen=True)
class Claim:
    key: str
    token: str
    won: bool
    status: str  # status of the row after the attempt: IN_PROGRESS, DONE, REJECTED, RETRY
    attempts: int
    run_id: str | None
    outcome: str | None = None


class Ledger:
    def __init__(self, warehouse: Any, lease_s: float = 900.0) -> None:
        self.warehouse = warehouse
        self.lease = timedelta(seconds=lease_s)

    def claim(self, key: str, kind: KeyKind, step: str, *, chain_id: str | None = None,
              run_id: str | None = None, now: datetime | None = None) -> Claim:
        now = now or datetime.now(timezone.utc)
        token = uuid.uuid4().hex
        params = {"event_key": key, "key_kind": kind.value, "step": step, "chain_id": chain_id, "run_id": run_id,
                  "token": token, "now": now, "lease_until": now + self.lease}
        with self.warehouse.transaction():
            self.warehouse.execute(_CLAIM_SQL, params)
            rows = self.warehouse.query(_READ_SQL, {"event_key": key})
        if rows.empty:  # cannot happen after a successful MERGE; treat as a transient fault
            raise RuntimeError(f"dedupe claim of {key} left no row")
        row = rows.iloc[0]
        return Claim(key=key, token=token, won=row["claim_token"] == token, status=str(row["status"]),
                     attempts=int(row["attempts"]), run_id=_opt(row["run_id"]), outcome=_opt(row["outcome"]))

    def finish(self, claim: Claim, status: str, *, outcome: str | None = None, run_id: str | None = None) -> None:
        """DONE or REJECTED end the key for good; RETRY lets the next delivery claim it again."""
        if status not in ("DONE", "REJECTED", "RETRY"):
            raise ValueError(f"unknown ledger status {status!r}")
        self.warehouse.execute(_FINISH_SQL, {"status": status, "now": datetime.now(timezone.utc),
                                             "outcome": (outcome or "")[:1000] or None, "run_id": run_id,
                                             "event_key": claim.key, "token": claim.token})

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self.warehouse.query(_READ_SQL, {"event_key": key})
        return None if rows.empty else {k: _opt(v) for k, v in rows.iloc[0].items()}


def _opt(value: Any) -> Any:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value
