-- Input (optional): planned promotions, one row per promotion. Past rows are allowed (history);
-- only the days inside a run's forecast horizon are used.
CREATE TABLE IF NOT EXISTS `{dataset}.promotions` (
  store_id STRING OPTIONS(description = 'Store identifier; empty (NULL) means every store of the chain'),
  product_id STRING NOT NULL OPTIONS(description = 'Product identifier'),
  start_date DATE NOT NULL OPTIONS(description = 'First day on promotion'),
  end_date DATE NOT NULL OPTIONS(description = 'Last day on promotion (inclusive), not before start_date')
)
CLUSTER BY product_id
OPTIONS(description = 'Planned promotions (the forecast lifts demand on these days)');
