"""Schema-driven fuzzing: no 5xx, and every response matches the OpenAPI schema.

Valid and invalid requests are generated from the app's own OpenAPI description, a
bounded number per operation, and sent to the real app over a real store.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from assistant.http.app import create_app
from assistant.runtime import Runtime

EXAMPLES = 20
# Rules JSON Schema cannot state: the last chat message must be the user's question, and an
# upload must be a readable document. There, a valid-looking request may get a 4xx.
SEMANTIC_RULES = {"POST /v1/chat/completions", "POST /api/documents"}


@pytest.fixture
def api_schema(isolated_runtime: Runtime):
    app = create_app(isolated_runtime.settings.model_copy(update={"rate_limit_per_minute": 0}), isolated_runtime)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def fuzz(operation, mode: GenerationMode):
    """A Hypothesis test sending generated requests to one operation."""
    excluded = [positive_data_acceptance] if operation.label in SEMANTIC_RULES else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        case.call_and_validate(excluded_checks=excluded)

    return check


# Slow: some 300 requests generated from the whole OpenAPI description.
@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(api_schema, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:
        try:
            fuzz(operation, mode)()
        except Unsatisfiable:
            # Nothing invalid can be made for an operation without inputs (GET /healthz).
            assert mode is GenerationMode.NEGATIVE
