-- For the ERP: the <prefix>-reorders topic's messages (the order lines a planner releases),
-- written by a Pub/Sub BigQuery subscription (terraform/pubsub.tf, write_metadata). The services
-- never write here. At least once: a message may appear twice with the same message_id.
CREATE TABLE IF NOT EXISTS `{dataset}.reorder_messages` (
  subscription_name STRING OPTIONS(description = 'Pub/Sub subscription that wrote the row'),
  message_id STRING OPTIONS(description = 'Pub/Sub message id (the same on a redelivery)'),
  publish_time TIMESTAMP OPTIONS(description = 'When the plan step published the message'),
  data STRING OPTIONS(description = 'The message: JSON of retailopt/services/schemas/message-v1.json, one replenishment order per message (kind reorder: chain_id, run_id, run_date, order with order_id, dc_id, store_id, product_id, quantity, cases, order_value, expected_arrival)'),
  attributes STRING OPTIONS(description = 'JSON of the message attributes: schema_version, kind, run_id, chain_id')
)
PARTITION BY DATE(publish_time)
OPTIONS(description = 'Replenishment order lines released for the ERP, as published on the <prefix>-reorders topic');
