"""Property test against the OpenAPI document: no generated request makes a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from shopkeeper.serve import create_app
from tests.serve.conftest import auth, settings


@pytest.mark.slow
def test_no_generated_request_makes_a_server_error(home: Path, keys: dict[str, str]) -> None:
    app = create_app(settings(home))
    with TestClient(app):  # the lifespan runs: the service is loaded
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [op.ok() for op in schema.get_all_operations()]  # type: ignore[union-attr]
        assert len(operations) >= 9
        failures: list[str] = []
        statuses: set[int] = set()
        for op in operations:

            @hsettings(
                max_examples=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=op.as_strategy())
            def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
                if case.method == "DELETE":  # erasure is tested on its own
                    return
                response = case.call(headers=auth(keys["admin"]))
                statuses.add(response.status_code)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

            check()
    assert not failures, failures[:5]
    assert {200, 422} <= statuses  # valid and invalid requests were both generated
