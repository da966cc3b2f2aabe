-- Service state: the dedupe ledger of handled events (Pub/Sub delivers at least once).
CREATE TABLE IF NOT EXISTS `{dataset}.processed_events` (
  event_key STRING NOT NULL OPTIONS(description = 'event:<source>/<CloudEvent id> or key:<chain>/<run date>/<step>/<run id>'),
  key_kind STRING NOT NULL OPTIONS(description = 'EVENT_ID or BUSINESS_KEY'),
  step STRING NOT NULL,
  chain_id STRING,
  run_id STRING,
  status STRING NOT NULL OPTIONS(description = 'IN_PROGRESS, RETRY, DONE or REJECTED'),
  claim_token STRING NOT NULL OPTIONS(description = 'Random token of the delivery holding the claim'),
  attempts INT64 NOT NULL,
  claimed_at TIMESTAMP NOT NULL,
  lease_until TIMESTAMP NOT NULL OPTIONS(description = 'An IN_PROGRESS claim older than this is taken over'),
  finished_at TIMESTAMP,
  outcome STRING OPTIONS(description = 'Why the event was rejected or how it ended')
)
CLUSTER BY event_key
OPTIONS(description = 'Events and business keys already handled by the services');
