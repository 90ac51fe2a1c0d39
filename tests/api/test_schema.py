"""The OpenAPI contract, checked by schemathesis against the live API over real sockets.

Every operation in ``/openapi.json`` gets generated requests, valid ones and invalid ones (up to
``EXAMPLES`` each), sent to a real uvicorn process. Each answer must not be a 5xx, must use a
status code the document lists for that operation, must have the documented content type and
must match the documented body schema; and every operation must refuse a request without the
token. Hypothesis runs derandomized so the suite is repeatable; set ``API_FUZZ_SEED=random`` (and
``API_FUZZ_EXAMPLES=200``) to explore new inputs locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from audiencehub.processes import HubEmulator, RedisServer
from tests.api.helpers import TOKEN, ApiProcess, api_process

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]

schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@pytest.fixture(scope="module")
def api(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    workdir = tmp_path_factory.mktemp("api-schema")
    with api_process(redis_server, workdir, "apischema") as (proc, _cfg):
        yield proc


def seed(api: ApiProcess, hub: HubEmulator) -> None:
    """Something to find, so generated requests reach the 200 paths and not only the 404s."""
    s = requests.Session()
    s.headers.update(AUTH)
    base = api.base_url
    s.post(f"{base}/audiences", json={"slug": "seeded", "filter": "FILTER EXISTS email"})
    auth = s.post(
        f"{base}/authorizations",
        json={"label": "seeded", "connection_string": hub.connection_string},
    ).json()
    s.post(
        f"{base}/jobs",
        json={"label": "seeded", "audiences": ["seeded"], "authorization": auth["id"]},
    )
    s.post(f"{base}/collect/web", json={"user_id": "seeded", "email": "s@example.com"})


def run_operation(
    operation: Any, mode: GenerationMode, base_url: str, session: requests.Session
) -> None:
    checks = [*CHECKS, negative_data_rejection] if mode == GenerationMode.NEGATIVE else CHECKS

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=os.environ.get("API_FUZZ_SEED") != "random",
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url, session=session, headers=AUTH, checks=checks, timeout=30
        )

    run()


def test_every_operation_honours_the_openapi_document(api: ApiProcess, hub: HubEmulator) -> None:
    seed(api, hub)
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json", headers=AUTH)
    session = requests.Session()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an invalid operation: {result.err()}"
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                run_operation(operation, mode, api.base_url, session)
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                assert mode == GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # collect all; one report at the end
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in api.log()
