-- Analyst views: results of completed runs only (a failed or running run is never visible here).
CREATE OR REPLACE VIEW `{dataset}.completed_transfers` AS
SELECT t.* FROM `{dataset}.transfers` AS t JOIN `{dataset}.runs` AS r USING (run_id) WHERE r.status = 'COMPLETE';
CREATE OR REPLACE VIEW `{dataset}.completed_replenishment_orders` AS
SELECT o.* FROM `{dataset}.replenishment_orders` AS o JOIN `{dataset}.runs` AS r USING (run_id) WHERE r.status = 'COMPLETE';
CREATE OR REPLACE VIEW `{dataset}.completed_inventory_policy` AS
SELECT p.* FROM `{dataset}.inventory_policy` AS p JOIN `{dataset}.runs` AS r USING (run_id) WHERE r.status = 'COMPLETE';
CREATE OR REPLACE VIEW `{dataset}.completed_forecasts` AS
SELECT f.* FROM `{dataset}.forecasts` AS f JOIN `{dataset}.runs` AS r USING (run_id) WHERE r.status = 'COMPLETE';
CREATE OR REPLACE VIEW `{dataset}.completed_routes` AS
SELECT x.* FROM `{dataset}.routes` AS x JOIN `{dataset}.runs` AS r USING (run_id) WHERE r.status = 'COMPLETE';
CREATE OR REPLACE VIEW `{dataset}.completed_route_stops` AS
SELECT s.* FROM `{dataset}.route_stops` AS s JOIN `{dataset}.runs` AS r USING (run_id) WHERE r.status = 'COMPLETE';
