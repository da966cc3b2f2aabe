"""functions-framework entry points: one container image, FUNCTION_TARGET picks the service.

Each target only hands the request to `retailopt.services.entrypoints`, which parses the event,
calls the domain and answers.
"""

import functions_framework
import functions_framework.aio
from cloudevents.http import CloudEvent
from starlette.requests import Request
from starlette.responses import Response

from retailopt.services import entrypoints


@functions_framework.cloud_event
def import_files(event: CloudEvent) -> None:
    """A file finalized in the raw bucket, or a start message on `<prefix>-import`."""
    entrypoints.import_files(event)


@functions_framework.cloud_event
def forecast(event: CloudEvent) -> None:
    entrypoints.forecast(event)


@functions_framework.cloud_event
def plan(event: CloudEvent) -> None:
    """Policy, rebalancing and routing, then publish the plan and its reorder events."""
    entrypoints.plan(event)


@functions_framework.cloud_event
def retrain(event: CloudEvent) -> None:
    entrypoints.retrain(event)


@functions_framework.cloud_event
def dispatch(event: CloudEvent) -> None:
    """A released run on `<prefix>-dispatch`: its routes become Fleet Engine vehicles and tasks."""
    entrypoints.dispatch(event)


@functions_framework.http
def check_trainings(request):
    """Cloud Scheduler: record how the BigQuery ML trainings started by `retrain` have ended."""
    return entrypoints.check_trainings(request)


@functions_framework.aio.http
async def api(request: Request) -> Response:
    """The HTTP API, an ASGI function: functions-framework serves it with uvicorn."""
    return await entrypoints.api(request)
