-- Planned promotions overlapping [@since, @until): the forecast's promotion plan.
-- A NULL store_id is a chain-wide promotion (every store).
SELECT store_id, product_id, start_date, end_date
FROM `{dataset}.promotions`
WHERE start_date < @until AND end_date >= @since
