"""Structured logs: one JSON line per request and per task, with the request id (taken or made, and returned),
the API key's name (never the key) and the Celery task id."""

import io
import json
import logging
import re

import pytest
from rest_framework.test import APIClient

from metering.tasks import fold_pending_task
from openmeter_site.ops.logs import ContextFilter, JsonFormatter, TextFormatter, logging_config, request_id_var

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    """The lines the request and task loggers write, through the JSON formatter and context filter of LOGGING."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("openmeter.request", "openmeter.task", "tests.ops")]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for lg, (level, _) in zip(loggers, saved, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


def test_a_request_line_carries_the_given_request_id_and_the_key_name(api, api_key, json_lines):
    # when
    response = api.get("/api/v1/info/currencies", HTTP_X_REQUEST_ID="lb-7f3a.42")
    # then
    assert response["X-Request-Id"] == "lb-7f3a.42"
    [line] = json_lines()
    assert line["request_id"] == "lb-7f3a.42"
    assert line["api_key"] == "tests"  # the key's name
    assert (line["method"], line["path"], line["route"], line["status"]) == (
        "GET", "/api/v1/info/currencies", "api/v1/info/currencies", 200)
    assert line["level"] == "INFO" and line["logger"] == "openmeter.request"
    assert api_key not in json.dumps(line) and api_key[:10] not in json.dumps(line)


def test_a_request_without_a_usable_id_gets_a_new_one(json_lines):
    client = APIClient()
    made = client.get("/api/v1/info/currencies")["X-Request-Id"]
    replaced = client.get("/api/v1/info/currencies", HTTP_X_REQUEST_ID="two words\n")["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made) and re.fullmatch(r"[0-9a-f]{32}", replaced) and made != replaced
    assert [(line["request_id"], line["status"], line.get("api_key")) for line in json_lines()] == [
        (made, 401, None), (replaced, 401, None)]


def test_lines_logged_while_a_request_runs_carry_its_id(json_lines):
    token = request_id_var.set("req-1")
    try:
        logging.getLogger("tests.ops").warning("inside", extra={"invoice": "INV-1"})
    finally:
        request_id_var.reset(token)
    logging.getLogger("tests.ops").warning("outside")
    inside, outside = json_lines()
    assert (inside["message"], inside["request_id"], inside["invoice"]) == ("inside", "req-1", "INV-1")
    assert "request_id" not in outside


def test_a_task_line_carries_the_task_id_name_and_state(json_lines):
    result = fold_pending_task.delay()
    [line] = [line for line in json_lines() if line["logger"] == "openmeter.task"]
    assert line["task_id"] == result.id
    assert (line["task"], line["state"], line["level"]) == ("metering.fold_pending", "SUCCESS", "INFO")
    assert line["duration_ms"] >= 0


def test_text_format_keeps_plain_lines():
    config = logging_config(level="INFO", fmt="text")
    assert config["formatters"]["default"]["()"] is TextFormatter
    record = logging.makeLogRecord({"msg": "GET /api/v1/meters 200 1.5ms", "request_id": "r1", "task_id": None})
    assert TextFormatter("%(message)s").format(record) == "GET /api/v1/meters 200 1.5ms [request_id=r1]"
    with pytest.raises(ValueError, match="LOG_FORMAT='xml'"):
        logging_config(level="INFO", fmt="xml")
