"""Property-based run of the whole user and operator API against its own OpenAPI schema
(schemathesis): every operation, with generated valid (positive) and schema-violating
(negative) inputs, answered by the real app over a real relayer store (SQLite) and the real
ledger app, authenticated with a key holding every operator scope. No input may produce a
server error (5xx)."""

from __future__ import annotations

import hypothesis
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode

from api.auth import SCOPES, ApiKeyStore
from tests.unit.test_api_transfers import World

EXAMPLES = 15


def test_no_generated_input_makes_the_api_fail(tmp_path):
    world = World(tmp_path)
    account = b"\x42" * 32
    world.lock_request(account)
    world.observe(account)  # one stored transfer, so lookups can hit a real row
    _key, token = ApiKeyStore(world.store).create("schemathesis", sorted(SCOPES))
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 20  # the whole API is in the schema
    failures: list[str] = []
    statuses: list[int] = []

    def fuzz(op, mode) -> None:
        @hypothesis.given(case=op.as_strategy(generation_mode=mode), data=st.data())
        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def run(case, data):
            if data.draw(st.booleans(), label="authenticated"):
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            response = case.call()
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{op.label}: {response.status_code} {response.text[:300]}")

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to violate (no parameters)

    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(op, mode)
    assert not failures, "\n".join(sorted(set(failures))[:20])
    # the run really exercised the API: answers of every kind, not just rejections
    assert len(statuses) > 10 * len(operations)
    assert {200, 400, 401}.issubset(statuses) or {200, 422, 401}.issubset(statuses), set(statuses)
