-- Input: one row per product.
CREATE TABLE IF NOT EXISTS `{dataset}.products` (
  product_id STRING NOT NULL,
  name STRING NOT NULL,
  category STRING NOT NULL,
  unit_cost FLOAT64 NOT NULL OPTIONS(description = 'Purchase cost per unit'),
  price FLOAT64 NOT NULL OPTIONS(description = 'Regular selling price per unit'),
  case_pack INT64 NOT NULL OPTIONS(description = 'Units per case for distribution-centre orders'),
  unit_weight_kg FLOAT64,
  unit_volume_l FLOAT64
)
OPTIONS(description = 'Product master');
