"""Property-based fuzzing of the REST API against the OpenAPI document the server serves.

Schemathesis generates valid and invalid requests (examples, coverage and fuzzing phases) for
every operation except event streams and requests that start processes, sends them to a real
server process with a throwaway workspace, and checks each response: no server error, a
documented status code and content type, and a body that matches the documented schema.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server_process import ServerProcess

# Event streams never end, and these start kernels, papermill runs or benchmarks.
EXCLUDED = [
    "stream", "streamJobs", "streamJob", "monitoringStream",
    "submitJob", "submitSweep", "controlJob", "startBenchmark",
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
MIN_OPERATIONS = 40
FUZZ_CONFIG: dict[str, Any] = {
    "seed": 20240601,
    "generation": {"mode": "all", "max-examples": 25, "deterministic": True,
                   "database": "none", "no-shrink": True},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
    "request-timeout": 30,
}


@pytest.fixture
def fuzz_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server process whose workspace the fuzzer may change and delete at will."""
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root)
    try:
        yield server.start()
    finally:
        server.stop()  # also when it never became ready


def load_schema(server: ServerProcess) -> schemathesis.BaseSchema:
    """The document the server serves, loaded with the server's token, streams left out."""
    headers = {"Authorization": f"token {server.token}"}
    config = schemathesis.Config.from_dict(
        {**FUZZ_CONFIG, "base-url": f"{server.url}notebench/api", "headers": headers})
    schema = schemathesis.openapi.from_url(f"{server.url}notebench/api/openapi.json",
                                           headers=headers, config=config)
    return schema.exclude(operation_id=EXCLUDED)


@pytest.mark.timeout(600)
def test_api_fuzz(fuzz_server: ServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    """Every operation, valid and invalid input: only documented answers, never a 5xx."""
    schema = load_schema(fuzz_server)
    cases: Counter[str] = Counter()
    failures: list[str] = []

    def check_case(case: schemathesis.Case) -> None:
        cases[case.operation.label] += 1
        case.call_and_validate(checks=CHECKS)

    started = time.monotonic()
    # One Hypothesis test per operation, built as the pytest plugin builds them (examples,
    # coverage and fuzzing phases) and run here, all against this one server
    # (``schemathesis.pytest.from_fixture`` sets ``Node._nodeid``, which pytest 9.2 dropped).
    for result in get_all_tests(schema=schema, test_func=check_case, settings=None,
                                given_kwargs=None):
        if isinstance(result, Err):
            failures.append(f"schema: {result.err()}")
            continue
        operation, run_operation = result.ok()
        try:
            run_operation()
        except (Exception, FailureGroup) as exc:  # a FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label}: " + "".join(traceback.format_exception_only(exc)))
    summary = (f"api fuzz: {len(cases)} operations, {sum(cases.values())} cases, "
               f"{time.monotonic() - started:.0f}s, {len(failures)} failing operations")
    with capsys.disabled():  # the figures belong in every run's output, CI's too
        print(f"\n{summary}")
    assert not failures, summary + "\n\n" + "\n\n".join(failures)
    assert len(cases) >= MIN_OPERATIONS, summary


async def test_a_body_on_options_to_the_upload_route_is_dropped(jp_fetch: Any) -> None:
    """OPTIONS (served for CORS) reads a body it does not use, without closing the
    connection (the fuzzer found this one)."""
    response = await jp_fetch("notebench", "api", "assets", "upload", "models", method="OPTIONS",
                              body=b"\x89PNG" * 64, allow_nonstandard_methods=True,
                              raise_error=False)
    assert response.code < 500
