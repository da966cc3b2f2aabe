locals {
  # Bounds of the numeric planning settings: the table SETTING_BOUNDS of
  # functions/retailopt/config.py, repeated here so that `terraform plan` refuses a value the
  # services would refuse at start-up (tests/test_terraform.py compares the two and runs the
  # validation rules on every edge). integer: whole numbers only; mapping: a JSON object whose
  # values all lie within the bounds.
  setting_bounds = {
    carbon_price_per_kg              = { min = 0, max = 100, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    class_a_stockout_share           = { min = 0.1, max = 1, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    confidence_level                 = { min = 0.5, max = 1, min_exclusive = false, max_exclusive = true, integer = false, mapping = false }
    cost_service_level_max           = { min = 0.5, max = 1, min_exclusive = false, max_exclusive = true, integer = false, mapping = false }
    cost_service_level_min           = { min = 0.5, max = 1, min_exclusive = false, max_exclusive = true, integer = false, mapping = false }
    fill_rate_by_class               = { min = 0.5, max = 1, min_exclusive = false, max_exclusive = true, integer = false, mapping = true }
    fleet_max_vehicles               = { min = 1, max = 10000, min_exclusive = false, max_exclusive = false, integer = true, mapping = false }
    handling_cost_per_unit           = { min = 0, max = 1000000, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    history_days                     = { min = 28, max = 3660, min_exclusive = false, max_exclusive = false, integer = true, mapping = false }
    holding_cost_rate                = { min = 0, max = 5, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    horizon_days                     = { min = 1, max = 366, min_exclusive = false, max_exclusive = false, integer = true, mapping = false }
    max_transfer_km                  = { min = 0, max = 2000, min_exclusive = true, max_exclusive = false, integer = false, mapping = false }
    min_transfer_units               = { min = 1, max = 100000, min_exclusive = false, max_exclusive = false, integer = true, mapping = false }
    min_transfer_value               = { min = -1000000000, max = 1000000000, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    order_cost_per_line              = { min = 0, max = 1000000, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    overstock_cover_days             = { min = 1, max = 730, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    review_period_days               = { min = 1, max = 90, min_exclusive = false, max_exclusive = false, integer = true, mapping = false }
    routing_max_route_hours          = { min = 0, max = 24, min_exclusive = true, max_exclusive = false, integer = false, mapping = false }
    routing_penalty_factor           = { min = 0, max = 1000, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    routing_time_limit_s             = { min = 0.1, max = 3600, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    run_lease_s                      = { min = 2, max = 86400, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    seed                             = { min = 0, max = 4294967295, min_exclusive = false, max_exclusive = false, integer = true, mapping = false }
    service_level                    = { min = 0.5, max = 1, min_exclusive = false, max_exclusive = true, integer = false, mapping = false }
    service_level_by_category        = { min = 0.5, max = 1, min_exclusive = false, max_exclusive = true, integer = false, mapping = true }
    service_level_by_class           = { min = 0.5, max = 1, min_exclusive = false, max_exclusive = true, integer = false, mapping = true }
    slow_mover_daily_demand          = { min = 0, max = 1000, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    speed_kmh                        = { min = 1, max = 130, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    transfer_lead_days               = { min = 0, max = 60, min_exclusive = false, max_exclusive = false, integer = true, mapping = false }
    transfer_max_wait_days           = { min = 0, max = 60, min_exclusive = false, max_exclusive = false, integer = true, mapping = false }
    transfer_pricing_time_s          = { min = 0, max = 3600, min_exclusive = true, max_exclusive = false, integer = false, mapping = false }
    transfer_sender_min_daily_demand = { min = 0, max = 1000, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    transfer_sender_reserve_days     = { min = 0, max = 366, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    transport_cost_per_unit_km       = { min = 0, max = 1000000, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
    visit_minutes                    = { min = 0, max = 240, min_exclusive = false, max_exclusive = false, integer = false, mapping = false }
  }
}
