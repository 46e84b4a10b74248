"""Property-based fuzzing of the served OpenAPI (Schemathesis): every route, signed in and not.

Schemathesis generates requests from the schema the app serves (valid and invalid by it) and
checks each answer: no 5xx, status code documented, body valid against the documented schema,
content type documented. The app runs in-process (lifespan, store, users as in production), so
no request can hang on the network; a bounded number of examples per route keeps it fast.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.serving.conftest import Api

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 25
#: Rules that span two fields, which JSON Schema cannot state: a strip's duration (samples / fs)
#: and the audit window (since < until). The documented bounds of each field are exact (the
#: served document carries the configured limits, serving/openapi.py); a request within them
#: may still get the documented 422 here, so only "schema-valid requests are accepted" is not
#: checked on these routes. Every other check applies to them.
CROSS_FIELD_RULES = {
    ("POST", "/api/v1/predict"),
    ("POST", "/api/v1/predict/batch"),
    ("GET", "/api/v1/audit"),
    # An upload's content rules (an ECG recording, docs/recordings.md) are not a JSON schema, and
    # multipart cannot send the empty list of files the schema allows.
    ("POST", "/api/v1/recordings"),
    # The Open Inference Protocol's request is generic by the protocol: which inputs a model takes
    # (names, datatypes, shapes) is in its metadata (GET /v2/models/{name}), not in the schema.
    ("POST", "/v2/models/{model_name}/infer"),
    ("POST", "/v2/models/{model_name}/versions/{model_version}/infer"),
}


@pytest.fixture
def fuzz_api(api: Api) -> Api:
    """The app serving ecg-xgboost v1 (tests/serving/conftest.py)."""
    return api


def _operations(api: Api) -> list[Any]:
    document = api.client.get("/api/openapi.json").json()
    return [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]


def _fuzz(api: Api, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Every operation, inputs valid and invalid by its schema: requests sent, distinct failures.

    Failures are collected over all operations (not the first one only) so that one run shows
    every contract violation, each once with one example.
    """
    sent = 0
    failures: dict[tuple[str, str, str], str] = {}
    for operation in _operations(api):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                nonlocal sent
                sent += 1
                problem, example = _call(case, api, headers)
                if problem:
                    failures.setdefault((case.method, case.path, problem), example)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (a route without parameters)
                assert mode is GenerationMode.NEGATIVE
    return sent, [f"{m} {p}: {problem}\n    {ex}" for (m, p, problem), ex in failures.items()]


def _call(case: Any, api: Api, headers: dict[str, str]) -> tuple[str | None, str]:
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    kwargs.pop("allow_redirects", None)
    kwargs.pop("follow_redirects", None)
    try:
        request = api.client.build_request(**kwargs)
        request.read()
    except (TypeError, AttributeError, ValueError) as exc:
        # A multipart body no HTTP client can encode (e.g. a number where a file goes): nothing
        # reaches the server, so there is no answer to check.
        return None, f"not sendable: {exc}"
    response = api.client.send(request, follow_redirects=False)
    example = (
        f"{kwargs.get('params')} {str(kwargs.get('json'))[:120]} -> "
        f"{response.status_code} {response.text[:200]}"
    )
    if response.status_code >= 500:
        return "5xx", example
    excluded = [positive_data_acceptance] if (case.method, case.path) in CROSS_FIELD_RULES else []
    try:
        case.validate_response(response, excluded_checks=excluded)
    except FailureGroup as group:
        return "; ".join(sorted({str(exc.title) for exc in group.exceptions})), example
    return None, example


def test_admin_requests_conform_to_the_schema(fuzz_api: Api) -> None:
    sent, failures = _fuzz(fuzz_api, fuzz_api.headers("adam", "admin"))
    assert sent > 100
    assert not failures, "\n".join(failures)


def test_anonymous_requests_conform_to_the_schema(fuzz_api: Api) -> None:
    sent, failures = _fuzz(fuzz_api, {})
    assert sent > 100
    assert not failures, "\n".join(failures)
