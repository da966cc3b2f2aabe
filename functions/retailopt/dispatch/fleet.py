"""A released run's routes as Fleet Engine Deliveries vehicles and tasks, and the drivers' outcomes.

`dispatch_run` turns each route of the run into the vehicle's journey for the day:

- one `DeliveryVehicle` per truck, id = `vehicles.vehicle_id`, created the first time it is
  dispatched and reused after;
- per stop one task: a pickup at the sending store (`PICKUP`) or at the distribution centre
  (`SCHEDULED_STOP`, as Fleet Engine asks for depot pickups), a `DELIVERY` at the receiving store;
  planned location, a 1-hour target window from the planned arrival, the visit duration; the
  task id is derived from run, route and stop (`task_id`), so a redelivered release event creates
  nothing twice (created tasks are found again, and the ledger is written once);
- the vehicle's remaining journey segments list its stops in order, which assigns the tasks.

Each task is recorded in `dispatch_tasks` with the released lines it carries (only lines a
release committed; a load whose lines were all rejected gets no task). `close_task` records a
driver's outcome: delivered (every unit), failed (none) or partly delivered (some units): it
closes the task in Fleet Engine (`UpdateTask`: state CLOSED, task_outcome, outcome time) and in
the ledger, where the next plan reads it (`retailopt.dispatch.ledger`).

The same code drives Fleet Engine (`fe.DeliveryServiceClient()`) and the local stand-in
(`local_fleet.local_client(wh)`): only the client's transport differs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
from google.api_core import exceptions
from google.maps import fleetengine_delivery_v1 as fe
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.type import latlng_pb2

from retailopt.errors import StatusError
from retailopt.warehouse.base import query_file

log = logging.getLogger(__name__)

OUTCOMES = ("DELIVERED", "FAILED", "PARTIAL")
TARGET_WINDOW = timedelta(hours=1)
_FORBIDDEN = re.compile(r"[/:?,#]")


class DispatchError(StatusError):
    """A dispatch or outcome that cannot be done: `status` 400, 404 or 409, and why."""


@dataclass(frozen=True)
class Dispatched:
    run_id: str
    vehicles: int
    tasks: int
    lines: int
    units: int
    created: int  # tasks created in Fleet Engine by this call (0 when already dispatched)
    already: bool


def provider(project: str | None) -> str:
    """The Fleet Engine provider: the Google Cloud project (`local` for the stand-in)."""
    return f"providers/{project or 'local'}"


def task_id(run_id: str, route_id: str, stop_sequence: int) -> str:
    """The task of a stop: the same run, route and stop always give the same id (64 characters at
    most, none of / : ? , #)."""
    digest = hashlib.sha256(f"{run_id}\x1f{route_id}\x1f{int(stop_sequence)}".encode()).hexdigest()[:24]
    return f"t{int(stop_sequence):03d}-{digest}"


def vehicle_id(vehicle: str) -> str:
    if not vehicle or len(vehicle) > 64 or _FORBIDDEN.search(vehicle):
        raise DispatchError(400, f"vehicle_id {vehicle!r} cannot be a Fleet Engine id (1-64 characters, "
                                 "none of / : ? , #)")
    return vehicle


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(timezone.utc))
    return stamp


def _released(wh: Any, run_id: str) -> bool:
    return int(query_file(wh, "run_released", {"run_id": run_id}).marks.iloc[0]) > 0


def plan_tasks(wh: Any, run: dict[str, Any]) -> pd.DataFrame:
    """The `dispatch_tasks` rows of a run's released routes (state OPEN), from their stops and loads."""
    run_id = run["run_id"]
    stops = wh.query("SELECT * FROM `{dataset}.released_route_stops` WHERE run_id = @run_id "
                     "ORDER BY route_id, stop_sequence", {"run_id": run_id})
    lines = query_file(wh, "dispatch_lines", {"run_id": run_id})
    lines = lines.assign(quantity=lines["released"].astype("int64"))
    lines = lines[lines.quantity > 0]
    if stops.empty or lines.empty:
        return pd.DataFrame()
    rows = stops.merge(lines.drop(columns=["planned", "released"]), on="shipment_id", how="inner")
    if rows.empty:
        return pd.DataFrame()
    rows["task_id"] = [task_id(run_id, r, s) for r, s in zip(rows.route_id, rows.stop_sequence)]
    return pd.DataFrame({
        "run_id": run_id, "run_date": pd.Timestamp(run["run_date"]).date(), "task_id": rows.task_id,
        "task_type": rows.visit_type.astype(str), "vehicle_id": rows.vehicle_id.astype(str),
        "route_id": rows.route_id, "stop_sequence": rows.stop_sequence.astype("int64"),
        "location_id": rows.location_id, "shipment_id": rows.shipment_id,
        "planned_time": pd.to_datetime(rows.arrival_time, utc=True), "source_run_id": rows.source_run_id,
        "line_type": rows.line_type, "line_id": rows.line_id, "product_id": rows.product_id,
        "origin_id": rows.origin_id, "destination_id": rows.destination_id,
        "quantity": rows.quantity.astype("int64"), "state": "OPEN", "outcome": None, "units_delivered": None,
        "closed_at": None, "closed_by": None, "note": None,
        "lat_": rows.latitude.astype(float), "lng_": rows.longitude.astype(float),
        "dc_pickup_": (rows.visit_type == "PICKUP") & (rows.line_type == "ORDER"),
    })


def _task(row: Any, visit_minutes: float) -> fe.Task:
    kind = fe.Task.Type.SCHEDULED_STOP if row.dc_pickup_ else (
        fe.Task.Type.PICKUP if row.task_type == "PICKUP" else fe.Task.Type.DELIVERY)
    start = pd.Timestamp(row.planned_time).to_pydatetime()
    task = fe.Task(
        type_=kind, state=fe.Task.State.OPEN,
        planned_location=fe.LocationInfo(point=latlng_pb2.LatLng(latitude=row.lat_, longitude=row.lng_)),
        task_duration=duration_pb2.Duration(seconds=int(round(visit_minutes * 60))),
        target_time_window=fe.TimeWindow(start_time=_timestamp(start), end_time=_timestamp(start + TARGET_WINDOW)),
        attributes=[fe.TaskAttribute(key="run_id", string_value=row.run_id),
                    fe.TaskAttribute(key="route_id", string_value=row.route_id),
                    fe.TaskAttribute(key="location_id", string_value=row.location_id),
                    fe.TaskAttribute(key="units", number_value=float(row.units))])
    if kind != fe.Task.Type.SCHEDULED_STOP:  # tracking ids are for pickups and deliveries only
        task.tracking_id = row.shipment_id[:64].replace("/", "-")
    return task


def dispatch_run(wh: Any, client: fe.DeliveryServiceClient, run: dict[str, Any], *, parent: str,
                 visit_minutes: float = 10.0) -> Dispatched:
    """Create the run's vehicles and tasks in Fleet Engine and record them (once)."""
    run_id = run["run_id"]
    if run.get("status") != "COMPLETE":
        raise DispatchError(409, f"run {run_id} is {run.get('status')}: only a complete plan is dispatched")
    if not _released(wh, run_id):
        raise DispatchError(409, f"run {run_id} is not released: release it first")
    done = wh.query("SELECT COUNT(DISTINCT task_id) AS tasks, COUNT(*) AS lines, SUM(IF(task_type = 'DELIVERY', "
                    "quantity, 0)) AS units, COUNT(DISTINCT vehicle_id) AS vehicles FROM `{dataset}.dispatch_tasks` "
                    "WHERE run_id = @run_id", {"run_id": run_id}).iloc[0]
    if int(done.tasks):
        return Dispatched(run_id, int(done.vehicles), int(done.tasks), int(done.lines), int(done.units or 0), 0, True)
    rows = plan_tasks(wh, run)
    if rows.empty:
        return Dispatched(run_id, 0, 0, 0, 0, 0, False)
    stops = rows.assign(units=rows.groupby("task_id").quantity.transform("sum")) \
        .drop_duplicates("task_id").sort_values(["vehicle_id", "planned_time", "stop_sequence"])
    for vehicle in stops.vehicle_id.unique():
        name = f"{parent}/deliveryVehicles/{vehicle_id(vehicle)}"
        try:
            client.get_delivery_vehicle(request=fe.GetDeliveryVehicleRequest(name=name))
        except exceptions.NotFound:  # the truck's first dispatch: created once, reused after
            client.create_delivery_vehicle(request=fe.CreateDeliveryVehicleRequest(
                parent=parent, delivery_vehicle_id=vehicle,
                delivery_vehicle=fe.DeliveryVehicle(type_=fe.DeliveryVehicle.DeliveryVehicleType.AUTO)))
    created = _create_tasks(client, parent, [(r.task_id, _task(r, visit_minutes)) for r in stops.itertuples()])
    for vehicle, its in stops.groupby("vehicle_id", sort=True):
        segments = []
        for (route_id, sequence), stop in its.groupby(["route_id", "stop_sequence"], sort=False):
            first = stop.iloc[0]
            segments.append(fe.VehicleJourneySegment(stop=fe.VehicleStop(
                planned_location=fe.LocationInfo(point=latlng_pb2.LatLng(latitude=first.lat_, longitude=first.lng_)),
                tasks=[fe.VehicleStop.TaskInfo(task_id=t) for t in stop.task_id],
                state=fe.VehicleStop.State.NEW)))
        client.update_delivery_vehicle(request=fe.UpdateDeliveryVehicleRequest(
            delivery_vehicle=fe.DeliveryVehicle(name=f"{parent}/deliveryVehicles/{vehicle}",
                                                remaining_vehicle_journey_segments=segments),
            update_mask=field_mask_pb2.FieldMask(paths=["remaining_vehicle_journey_segments"])))
    ledger = rows.drop(columns=["lat_", "lng_", "dc_pickup_"])
    with wh.transaction():
        again = wh.query("SELECT COUNT(*) AS n FROM `{dataset}.dispatch_tasks` WHERE run_id = @run_id",
                         {"run_id": run_id})
        if int(again.n.iloc[0]) == 0:
            wh.insert("dispatch_tasks", ledger)
    units = int(ledger.loc[ledger.task_type == "DELIVERY", "quantity"].sum())
    log.info("run %s dispatched: %d vehicles, %d tasks (%d created), %d units", run_id, stops.vehicle_id.nunique(),
             len(stops), created, units)
    return Dispatched(run_id, int(stops.vehicle_id.nunique()), int(len(stops)), int(len(ledger)), units, created,
                      False)


def _create_tasks(client: fe.DeliveryServiceClient, parent: str, tasks: list[tuple[str, fe.Task]]) -> int:
    """BatchCreateTasks in batches of 500; a batch that meets a task created before (a redelivered
    event that got half way) is created task by task, skipping those that exist."""
    created = 0
    for start in range(0, len(tasks), 500):
        batch = tasks[start:start + 500]
        try:
            client.batch_create_tasks(request=fe.BatchCreateTasksRequest(parent=parent, requests=[
                fe.CreateTaskRequest(parent=parent, task_id=tid, task=task) for tid, task in batch]))
            created += len(batch)
        except exceptions.AlreadyExists:
            for tid, task in batch:
                try:
                    client.create_task(request=fe.CreateTaskRequest(parent=parent, task_id=tid, task=task))
                    created += 1
                except exceptions.AlreadyExists:
                    pass
    return created


def close_task(wh: Any, client: fe.DeliveryServiceClient, *, parent: str, task: str, outcome: str,
               identity: str, units: int | None = None, note: str | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    """Record a driver's outcome for an open task: DELIVERED (all units), FAILED (none) or PARTIAL
    (`units` of them, fewer than the task carries and more than none). A pickup task closes as
    it is (its units are those of its delivery task)."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    outcome = str(outcome or "").upper()
    if outcome not in OUTCOMES:
        raise DispatchError(400, f"outcome {outcome!r}: expected DELIVERED, FAILED or PARTIAL")
    if note is not None and len(note) > 500:
        raise DispatchError(400, "note longer than 500 characters")
    rows = wh.query("SELECT * FROM `{dataset}.dispatch_tasks` WHERE task_id = @task ORDER BY source_run_id, "
                    "line_type, line_id", {"task": task})
    if rows.empty:
        raise DispatchError(404, f"no dispatched task {task}")
    if (rows.state == "CLOSED").any():
        raise DispatchError(409, f"task {task} is closed already ({rows.outcome.iloc[0]})")
    total = int(rows.quantity.sum())
    if outcome == "DELIVERED":
        delivered = total
    elif outcome == "FAILED":
        delivered = 0
    else:
        if isinstance(units, bool) or not isinstance(units, int):
            raise DispatchError(400, "a partial delivery needs units: the whole number of units delivered")
        if not 0 < units < total:
            raise DispatchError(400, f"partial delivery of {units} units: expected more than 0 and fewer than "
                                     f"the {total} units of task {task}")
        delivered = units
    if outcome != "DELIVERED" and not (note or "").strip():
        raise DispatchError(400, f"say why task {task} was not delivered in full (note)")
    client.update_task(request=fe.UpdateTaskRequest(
        task=fe.Task(name=f"{parent}/tasks/{task}", state=fe.Task.State.CLOSED,
                     task_outcome=fe.Task.TaskOutcome.FAILED if delivered == 0 else fe.Task.TaskOutcome.SUCCEEDED,
                     task_outcome_time=_timestamp(now)),
        update_mask=field_mask_pb2.FieldMask(paths=["state", "task_outcome", "task_outcome_time"])))
    left = delivered
    shares = []
    for quantity in rows.quantity.astype(int):  # the delivered units fill the lines in order
        take = min(quantity, left)
        shares.append(take)
        left -= take
    closed = rows.assign(state="CLOSED", outcome="FAILED" if delivered == 0 else "SUCCEEDED",
                         units_delivered=shares if rows.task_type.iloc[0] == "DELIVERY" else None,
                         closed_at=now, closed_by=identity, note=(note or "").strip() or None)
    with wh.transaction():
        wh.execute("DELETE FROM `{dataset}.dispatch_tasks` WHERE task_id = @task AND state = 'OPEN'", {"task": task})
        wh.insert("dispatch_tasks", closed)
    log.info("task %s closed: %s, %d of %d units, by %s", task, outcome, delivered, total, identity)
    return {"task_id": task, "outcome": outcome, "units": total, "units_delivered": delivered,
            "closed_at": now.isoformat(), "closed_by": identity}


def tasks_of(wh: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's dispatched tasks, one entry per task with its lines, in route order."""
    rows = wh.query("SELECT * FROM `{dataset}.dispatch_tasks` WHERE run_id = @run_id "
                    "ORDER BY vehicle_id, planned_time, stop_sequence, line_type, line_id", {"run_id": run_id})
    out: list[dict[str, Any]] = []
    for tid, group in rows.groupby("task_id", sort=False):
        first = group.iloc[0]
        out.append({
            "task_id": tid, "task_type": first.task_type, "vehicle_id": first.vehicle_id, "route_id": first.route_id,
            "stop_sequence": int(first.stop_sequence), "location_id": first.location_id,
            "shipment_id": first.shipment_id, "planned_time": pd.Timestamp(first.planned_time).isoformat(),
            "state": first.state, "outcome": None if pd.isna(first.outcome) else first.outcome,
            "units": int(group.quantity.sum()),
            "units_delivered": None if group.units_delivered.isna().all() else int(group.units_delivered.sum()),
            "note": None if pd.isna(first.note) else first.note,
            "lines": [{"source_run_id": r.source_run_id, "line_type": r.line_type, "line_id": r.line_id,
                       "product_id": r.product_id, "origin_id": r.origin_id, "destination_id": r.destination_id,
                       "quantity": int(r.quantity)} for r in group.itertuples()]})
    return out
