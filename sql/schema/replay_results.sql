-- Output: one row per strategy of a replay simulation on held-out demand (`retailopt replay`).
CREATE TABLE IF NOT EXISTS `{dataset}.replay_results` (
  replay_id STRING NOT NULL,
  created_at TIMESTAMP NOT NULL,
  strategy STRING NOT NULL OPTIONS(description = 'dc_only, min_max or policy_rebalance'),
  start_date DATE NOT NULL,
  end_date DATE NOT NULL,
  days INT64 NOT NULL,
  positions INT64 NOT NULL,
  replan_every_days INT64 NOT NULL,
  forecaster STRING NOT NULL,
  demand_units FLOAT64 NOT NULL,
  sold_units FLOAT64 NOT NULL,
  lost_units FLOAT64 NOT NULL,
  fill_rate FLOAT64 NOT NULL OPTIONS(description = 'Units sold / units demanded'),
  cycle_service_level FLOAT64 NOT NULL OPTIONS(description = 'Share of position-cycles with demand and no lost sale'),
  avg_on_hand_units FLOAT64 NOT NULL,
  avg_on_hand_value FLOAT64 NOT NULL OPTIONS(description = 'At unit cost'),
  units_moved INT64 NOT NULL,
  transfers INT64 NOT NULL,
  trips INT64 NOT NULL OPTIONS(description = 'Distinct store pairs per re-planning day'),
  transfer_cost FLOAT64 NOT NULL,
  order_lines INT64 NOT NULL,
  units_ordered INT64 NOT NULL,
  ordering_cost FLOAT64 NOT NULL,
  holding_cost FLOAT64 NOT NULL,
  lost_sales_cost FLOAT64 NOT NULL OPTIONS(description = 'Lost units times margin'),
  operating_cost FLOAT64 NOT NULL OPTIONS(description = 'Holding + ordering + transfer cost'),
  total_cost FLOAT64 NOT NULL OPTIONS(description = 'Operating cost + lost sales cost'),
  parameters STRING OPTIONS(description = 'JSON: replay arguments and settings')
)
PARTITION BY DATE(created_at)
CLUSTER BY replay_id, strategy
OPTIONS(description = 'Replay simulation results by strategy');
