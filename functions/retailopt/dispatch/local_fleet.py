"""A Fleet Engine Deliveries stand-in for one machine and tests.

`WarehouseTransport` is a transport of the library's own `DeliveryServiceClient`
(google-maps-fleetengine-delivery): the client builds and routes the requests exactly as it
would for Fleet Engine, and the transport answers them with the library's response types,
keeping the delivery vehicles and tasks in the warehouse table `fleet_engine_local` (each as the
API's JSON). It behaves as the service does where retailopt relies on it: a second create of the
same id is ALREADY_EXISTS, an unknown name NOT_FOUND, an update changes only the fields of its
update mask, a task's vehicle is the one whose journey segments list it, and a closed task
cannot be reopened. Filters, pagination and tracking are not answered (INVALID_ARGUMENT /
UNIMPLEMENTED), so nothing relies on them by accident.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.maps import fleetengine_delivery_v1 as fe
from google.maps.fleetengine_delivery_v1.services.delivery_service.transports.base import (
    DEFAULT_CLIENT_INFO, DeliveryServiceTransport)
from google.protobuf import empty_pb2, field_mask_pb2

TABLE = "fleet_engine_local"
_VEHICLE_NAME = re.compile(r"^providers/[^/]+/deliveryVehicles/[^/]+$")
_TASK_NAME = re.compile(r"^providers/[^/]+/tasks/[^/]+$")
_ID = re.compile(r"^[^/:?,#]{1,64}$")


def local_client(wh: Any) -> fe.DeliveryServiceClient:
    """The library's client over the warehouse-backed transport."""
    return fe.DeliveryServiceClient(transport=WarehouseTransport(wh))


class WarehouseTransport(DeliveryServiceTransport):
    def __init__(self, wh: Any) -> None:
        super().__init__(credentials=AnonymousCredentials())
        self.wh = wh
        self._prep_wrapped_messages(DEFAULT_CLIENT_INFO)

    # --- storage ---------------------------------------------------------------------------

    def _load(self, name: str, kind: type) -> Any | None:
        rows = self.wh.query(f"SELECT payload FROM `{{dataset}}.{TABLE}` WHERE name = @name", {"name": name})
        return None if rows.empty else kind.from_json(str(rows.payload.iloc[0]))

    def _save(self, name: str, resource: Any, *, new: bool) -> None:
        row = pd.DataFrame([{"name": name, "kind": type(resource).__name__,
                             "payload": type(resource).to_json(resource, indent=None),
                             "updated_at": datetime.now(timezone.utc)}])
        with self.wh.transaction():
            if new and self._load(name, type(resource)) is not None:
                raise exceptions.AlreadyExists(f"{name} already exists")
            self.wh.execute(f"DELETE FROM `{{dataset}}.{TABLE}` WHERE name = @name", {"name": name})
            self.wh.insert(TABLE, row)

    def _get(self, name: str, kind: type, pattern: re.Pattern) -> Any:
        if not pattern.match(name or ""):
            raise exceptions.InvalidArgument(f"name {name!r} is not a {kind.__name__} name")
        found = self._load(name, kind)
        if found is None:
            raise exceptions.NotFound(f"{name} not found")
        return found

    # --- delivery vehicles ----------------------------------------------------------------

    def _create_vehicle(self, request: fe.CreateDeliveryVehicleRequest, **_: Any) -> fe.DeliveryVehicle:
        if not _ID.match(request.delivery_vehicle_id or ""):
            raise exceptions.InvalidArgument(f"delivery_vehicle_id {request.delivery_vehicle_id!r} is not a valid id")
        vehicle = fe.DeliveryVehicle(request.delivery_vehicle)
        vehicle.name = f"{request.parent}/deliveryVehicles/{request.delivery_vehicle_id}"
        self._save(vehicle.name, vehicle, new=True)
        return vehicle

    def _get_vehicle(self, request: fe.GetDeliveryVehicleRequest, **_: Any) -> fe.DeliveryVehicle:
        return self._get(request.name, fe.DeliveryVehicle, _VEHICLE_NAME)

    def _update_vehicle(self, request: fe.UpdateDeliveryVehicleRequest, **_: Any) -> fe.DeliveryVehicle:
        current = self._get(request.delivery_vehicle.name, fe.DeliveryVehicle, _VEHICLE_NAME)
        _merge(current, request.delivery_vehicle, request.update_mask)
        self._save(current.name, current, new=False)
        for segment in current.remaining_vehicle_journey_segments:  # the vehicle now carries these tasks
            for info in segment.stop.tasks:
                name = f"{current.name.split('/deliveryVehicles/')[0]}/tasks/{info.task_id}"
                task = self._load(name, fe.Task)
                if task is None:
                    raise exceptions.NotFound(f"{name} not found (vehicle stop of {current.name})")
                task.delivery_vehicle_id = current.name.rsplit("/", 1)[1]
                self._save(name, task, new=False)
        return current

    def _delete_vehicle(self, request: fe.DeleteDeliveryVehicleRequest, **_: Any) -> empty_pb2.Empty:
        self._get(request.name, fe.DeliveryVehicle, _VEHICLE_NAME)
        self.wh.execute(f"DELETE FROM `{{dataset}}.{TABLE}` WHERE name = @name", {"name": request.name})
        return empty_pb2.Empty()

    def _list_vehicles(self, request: fe.ListDeliveryVehiclesRequest, **_: Any) -> fe.ListDeliveryVehiclesResponse:
        if request.filter or request.page_token:
            raise exceptions.InvalidArgument("the local stand-in lists without filter or page token")
        rows = self.wh.query(f"SELECT payload FROM `{{dataset}}.{TABLE}` WHERE kind = 'DeliveryVehicle' "
                             "AND STARTS_WITH(name, @prefix) ORDER BY name", {"prefix": request.parent + "/"})
        return fe.ListDeliveryVehiclesResponse(
            delivery_vehicles=[fe.DeliveryVehicle.from_json(p) for p in rows.payload], total_size=len(rows))

    # --- tasks ------------------------------------------------------------------------------

    def _create_task(self, request: fe.CreateTaskRequest, **_: Any) -> fe.Task:
        if not _ID.match(request.task_id or ""):
            raise exceptions.InvalidArgument(f"task_id {request.task_id!r} is not a valid id")
        task = fe.Task(request.task)
        if task.type_ == fe.Task.Type.TYPE_UNSPECIFIED:
            raise exceptions.InvalidArgument("task.type is required")
        if not task.task_duration:
            raise exceptions.InvalidArgument("task.task_duration is required")
        task.name = f"{request.parent}/tasks/{request.task_id}"
        task.state = fe.Task.State.OPEN
        self._save(task.name, task, new=True)
        return task

    def _batch_create(self, request: fe.BatchCreateTasksRequest, **kw: Any) -> fe.BatchCreateTasksResponse:
        for each in request.requests:  # all or nothing, as the API does
            if each.parent and each.parent != request.parent:
                raise exceptions.InvalidArgument("every CreateTaskRequest.parent must match the batch's")
            if self._load(f"{request.parent}/tasks/{each.task_id}", fe.Task) is not None:
                raise exceptions.AlreadyExists(f"task {each.task_id} already exists")
        created = [self._create_task(fe.CreateTaskRequest(parent=request.parent, task_id=each.task_id,
                                                          task=each.task), **kw) for each in request.requests]
        return fe.BatchCreateTasksResponse(tasks=created)

    def _get_task(self, request: fe.GetTaskRequest, **_: Any) -> fe.Task:
        return self._get(request.name, fe.Task, _TASK_NAME)

    def _update_task(self, request: fe.UpdateTaskRequest, **_: Any) -> fe.Task:
        current = self._get(request.task.name, fe.Task, _TASK_NAME)
        if current.state == fe.Task.State.CLOSED and "state" in request.update_mask.paths \
                and request.task.state != fe.Task.State.CLOSED:
            raise exceptions.FailedPrecondition(f"{current.name} is CLOSED and cannot be reopened")
        _merge(current, request.task, request.update_mask)
        self._save(current.name, current, new=False)
        return current

    def _delete_task(self, request: fe.DeleteTaskRequest, **_: Any) -> empty_pb2.Empty:
        task = self._get(request.name, fe.Task, _TASK_NAME)
        if task.state == fe.Task.State.OPEN and task.delivery_vehicle_id:
            raise exceptions.FailedPrecondition(f"{request.name} is OPEN and assigned to a vehicle")
        self.wh.execute(f"DELETE FROM `{{dataset}}.{TABLE}` WHERE name = @name", {"name": request.name})
        return empty_pb2.Empty()

    def _list_tasks(self, request: fe.ListTasksRequest, **_: Any) -> fe.ListTasksResponse:
        if request.filter or request.page_token:
            raise exceptions.InvalidArgument("the local stand-in lists without filter or page token")
        rows = self.wh.query(f"SELECT payload FROM `{{dataset}}.{TABLE}` WHERE kind = 'Task' "
                             "AND STARTS_WITH(name, @prefix) ORDER BY name", {"prefix": request.parent + "/"})
        return fe.ListTasksResponse(tasks=[fe.Task.from_json(p) for p in rows.payload], total_size=len(rows))

    def _tracking(self, request: fe.GetTaskTrackingInfoRequest, **_: Any) -> fe.TaskTrackingInfo:
        raise exceptions.MethodNotImplemented("task tracking is not kept by the local stand-in")

    # --- the transport's interface ------------------------------------------------------------

    @property
    def create_delivery_vehicle(self):
        return self._create_vehicle

    @property
    def get_delivery_vehicle(self):
        return self._get_vehicle

    @property
    def delete_delivery_vehicle(self):
        return self._delete_vehicle

    @property
    def update_delivery_vehicle(self):
        return self._update_vehicle

    @property
    def batch_create_tasks(self):
        return self._batch_create

    @property
    def create_task(self):
        return self._create_task

    @property
    def get_task(self):
        return self._get_task

    @property
    def delete_task(self):
        return self._delete_task

    @property
    def update_task(self):
        return self._update_task

    @property
    def list_tasks(self):
        return self._list_tasks

    @property
    def get_task_tracking_info(self):
        return self._tracking

    @property
    def list_delivery_vehicles(self):
        return self._list_vehicles

    @property
    def kind(self) -> str:
        return "warehouse"

    def close(self) -> None:
        pass


def _merge(current: Any, update: Any, mask: field_mask_pb2.FieldMask) -> None:
    """Copy the masked top-level fields of `update` onto `current` (an empty mask is refused, as
    the API requires one)."""
    if not mask.paths:
        raise exceptions.InvalidArgument("update_mask is required")
    raw_current, raw_update = type(current).pb(current), type(update).pb(update)
    for path in mask.paths:
        field = path.split(".")[0]
        if field not in raw_current.DESCRIPTOR.fields_by_name:
            raise exceptions.InvalidArgument(f"update_mask path {path!r} is not a field of {type(current).__name__}")
        raw_current.ClearField(field)
        descriptor = raw_current.DESCRIPTOR.fields_by_name[field]
        value = getattr(raw_update, field)
        if descriptor.is_repeated:
            getattr(raw_current, field).extend(value)
        elif descriptor.message_type is not None:
            if raw_update.HasField(field):
                getattr(raw_current, field).CopyFrom(value)
        else:
            setattr(raw_current, field, value)
