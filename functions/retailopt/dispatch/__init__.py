"""From a released plan to trucks and back to stock.

- `ledger`: the released lines (`committed_lines`), the lines a day's routes carry, the stock a plan
  starts from (snapshot + released lines in transit, on order and delivered since), failed
  deliveries as exceptions of the next plan.
- `fleet`: the routes of a released run as Fleet Engine Deliveries vehicles and tasks
  (`google-maps-fleetengine-delivery`), ids derived from run, route and stop, and the driver's
  outcomes (delivered, failed, partly delivered).
- `local_fleet`: a Fleet Engine stand-in for one machine and tests: a transport of the library's
  own client that answers with the library's types and keeps its state in the warehouse.
"""
