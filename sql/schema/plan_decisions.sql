-- Planner decisions on a complete plan (the workbench and POST /runs/{run_id}/decisions): append
-- only. Rows are inserted, never updated or deleted: a line's state is its latest row.
CREATE TABLE IF NOT EXISTS `{dataset}.plan_decisions` (
  decision_id STRING NOT NULL OPTIONS(description = 'Random id of the decision'),
  run_id STRING NOT NULL,
  run_date DATE NOT NULL,
  line_type STRING NOT NULL OPTIONS(description = 'TRANSFER (transfers.transfer_id), ORDER (replenishment_orders.order_id) or RUN (a release)'),
  line_id STRING NOT NULL OPTIONS(description = 'transfer_id, order_id, or the run id for a release'),
  action STRING NOT NULL OPTIONS(description = 'APPROVE, REJECT, EDIT (new quantity; the line needs approval again) or RELEASE'),
  old_quantity INT64 OPTIONS(description = 'Quantity of the line before the decision'),
  new_quantity INT64 OPTIONS(description = 'Quantity after the decision (released units for RELEASE)'),
  reason STRING OPTIONS(description = 'Why: required to reject'),
  decided_by STRING NOT NULL OPTIONS(description = 'Verified identity of the planner (local-user or the OS user in open local mode)'),
  decided_at TIMESTAMP NOT NULL
)
PARTITION BY run_date
CLUSTER BY run_id, line_id
OPTIONS(description = 'Append-only log of planner decisions: approvals, rejections, quantity edits and releases');
