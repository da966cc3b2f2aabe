-- For the ERP: the <prefix>-published topic's messages, written by a Pub/Sub BigQuery subscription
-- (terraform/pubsub.tf, write_metadata). The services never write here. At least once: a message
-- may appear twice with the same message_id.
CREATE TABLE IF NOT EXISTS `{dataset}.published_messages` (
  subscription_name STRING OPTIONS(description = 'Pub/Sub subscription that wrote the row'),
  message_id STRING OPTIONS(description = 'Pub/Sub message id (the same on a redelivery)'),
  publish_time TIMESTAMP OPTIONS(description = 'When the plan step published the message'),
  data STRING OPTIONS(description = 'The message: JSON of retailopt/services/schemas/message-v1.json, one message per complete run (kind published: chain_id, run_id, run_date, summary with kpis, artifacts, artifacts_location, orders, release)'),
  attributes STRING OPTIONS(description = 'JSON of the message attributes: schema_version, kind, run_id, chain_id')
)
PARTITION BY DATE(publish_time)
OPTIONS(description = 'Complete runs announced for review, as the plan step publishes them on the <prefix>-published topic');
