"""Property-based fuzzing of /v1 against a running `metalnic serve` (schemathesis).

Requests are generated from the published document (/v1/openapi.json): valid
ones and ones that break it (wrong types, missing fields, strings that are no
text, numbers beyond 64 bits).  Every answer must be no 5xx, match the
status codes and schemas the document declares, and every error must be in
Ironic's format.  Then a stateful run follows the document's links (create a
node, then show, patch, list its ports, move it, delete it …).  Afterwards the
listings must still answer: nothing a request stored may break a later read.

Runs on a noauth server and on an http_basic one as admin (the RBAC checks
run for real).  The budget is small for CI; for a longer run set
METALNIC_FUZZ_EXAMPLES (see docs/development.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PASSWORDS
from tests.support import Server, start_server

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("METALNIC_FUZZ_EXAMPLES", "4"))
STEPS = int(os.environ.get("METALNIC_FUZZ_STEPS", "12"))
VERSION = "X-OpenStack-Ironic-API-Version"


def ironic_error_format(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx under /v1 is Ironic's body: a JSON string holding the fault."""
    if response.status_code < 400:
        return None
    body = json.loads(response.content)
    assert set(body) == {"error_message"}, body
    fault = json.loads(body["error_message"])
    assert set(fault) == {"faultcode", "faultstring", "debuginfo"}, fault
    assert fault["faultstring"], fault
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ironic_error_format,
]


@pytest.fixture(scope="module", params=["noauth", "http_basic"])
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, users_file: Path
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "noauth":
        srv = start_server(tmp)
    else:
        srv = start_server(tmp, "--auth", "http_basic", "--users-file", str(users_file))
        srv.auth = ("admin", PASSWORDS["admin"])
    yield srv
    srv.stop()


def _schema(server: Server) -> Any:
    schema = schemathesis.openapi.from_url(server.url + "/v1/openapi.json")
    schema.config.update(base_url=server.url)
    return schema


def _call(server: Server, case: Any) -> None:
    # Half the cases name no version (the minimum, 1.1): give those the newest.
    if not (case.headers or {}).get(VERSION):
        case.headers = {**(case.headers or {}), VERSION: "1.53"}
    case.call_and_validate(checks=CHECKS, auth=server.auth, timeout=30)


def _operations(server: Server) -> list[Any]:
    return [result.ok() for result in _schema(server).get_all_operations()]


def _reads_still_work(server: Server) -> None:
    with server.client() as c:
        for path in ("/v1/nodes/detail", "/v1/ports/detail", "/v1/portgroups/detail"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_per_its_document(fuzz_server: Server, mode: Any) -> None:
    operations = _operations(fuzz_server)
    assert len(operations) >= 40
    strategy = st.one_of(*(op.as_strategy(generation_mode=mode) for op in operations))

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        _call(fuzz_server, case)

    run()
    _reads_still_work(fuzz_server)


def test_stateful_links(fuzz_server: Server) -> None:
    schema = _schema(fuzz_server)
    machine = schema.as_state_machine()
    server = fuzz_server

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def before_call(self, case: Any) -> None:
            if not (case.headers or {}).get(VERSION):
                case.headers = {**(case.headers or {}), VERSION: "1.53"}

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"auth": server.auth, "timeout": 30}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Workflow.run(
        settings=settings(
            max_examples=EXAMPLES * 4,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    _reads_still_work(fuzz_server)


def test_document_is_served_and_names_ironic_errors(fuzz_server: Server) -> None:
    doc = httpx.get(fuzz_server.url + "/v1/openapi.json", timeout=30).json()
    assert all(p == "/" or p.startswith("/v1") for p in doc["paths"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "422" not in op["responses"], (method, path)
            for code, answer in op["responses"].items():
                if code.startswith(("4", "5")):
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/IronicError"), (method, path, code)
