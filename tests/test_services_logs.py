import io
import json
import logging

import pytest

from retailopt.services import logs


@pytest.fixture()
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.CloudLoggingFormatter())
    logs.logger.addHandler(handler)
    logs.logger.setLevel(logging.INFO)
    yield stream
    logs.logger.removeHandler(handler)


def _lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_trace_headers():
    cloud = logs.trace_fields({"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}, "proj-1")
    assert cloud[logs.TRACE_KEY] == "projects/proj-1/traces/105445aa7843bc8bf206b12000100000"
    assert cloud[logs.SPAN_KEY] == "0000000000000001"
    w3c = logs.trace_fields({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "proj-1")
    assert w3c[logs.TRACE_KEY].endswith("/traces/4bf92f3577b34da6a3ce929d0e0e4736")
    assert w3c[logs.SPAN_KEY] == "00f067aa0ba902b7"
    assert logs.trace_fields({"traceparent": "garbage"}) == {}


def test_one_line_per_step_with_outcome(captured):
    headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    with logs.step_log("forecast", headers=headers, run_id="r1") as entry:
        entry.counts["rows"] = 12
    with pytest.raises(ValueError):
        with logs.step_log("plan", run_id="r1"):
            raise ValueError("solver exploded")
    with logs.step_log("import", run_id="r2") as entry:
        entry.finish("dropped", "too old")
    ok, failed, dropped = _lines(captured)
    assert ok["severity"] == "INFO" and ok["step"] == "forecast" and ok["outcome"] == "ok"
    assert ok["counts"] == {"rows": 12} and ok["run_id"] == "r1" and ok["duration_s"] >= 0
    assert logs.TRACE_KEY in ok
    assert failed["severity"] == "ERROR" and failed["outcome"] == "retry" and "solver exploded" in failed["reason"]
    assert dropped["severity"] == "WARNING" and dropped["outcome"] == "dropped"
