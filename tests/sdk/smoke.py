"""Drives a running simtest the way a user of the official Amigo Python SDK would.

    python smoke.py URL

Signs in with the demo org's API key through the SDK, then creates, lists, searches, updates and
deletes a unit test and a unit test set listing it, and checks every answer against the SDK's own
generated models.
Exits non-zero on the first mismatch.
"""

import sys
import uuid

import httpx
from amigo_sdk.auth import sign_in_with_api_key
from amigo_sdk.config import AmigoConfig
from amigo_sdk.generated.model import (
    SimulationCreateSimulationUnitTestSetRequest,
    SimulationCreateSimulationUnitTestSetResponse,
    SimulationGetSimulationUnitTestSetsResponse,
    SimulationSearchSimulationUnitTestSetResponse,
    SimulationUnitTest,
    SimulationUnitTestInstance,
    SimulationUpdateSimulationUnitTestSetRequest,
)

url = sys.argv[1].rstrip("/")
config = AmigoConfig(
    api_key="acme-ci-secret-change-me",
    api_key_id="acme-ci",
    user_id="alice",
    organization_id="acme",
    base_url=url,
)
signed_in = sign_in_with_api_key(config)
client = httpx.Client(base_url=f"{url}/v1/acme", headers={"Authorization": f"Bearer {signed_in.id_token}"})

name = f"SDK smoke {uuid.uuid4().hex[:8]}"
body = {
    "name": name,
    "description": "Created through the Amigo SDK's sign-in",
    "service_id": "6618791275130b73714e8d1c",
    "service_version_set_name": "release",
    "persona_id": "6618791275130b73714e8d2a",
    "scenario_id": "6618791275130b73714e8d3b",
    "max_interactions": 12,
    "success_criterions": [
        {"name": "done", "metric_id": "6618791275130b73714e8d4c", "criterion": {"type": "boolean", "expected_value": True}},
        {"name": "turns", "metric_id": "6618791275130b73714e8d4d", "criterion": {"type": "numerical", "verb": "<", "threshold": 7.5}},
    ],
    "tags": {"suite": "sdk", "flaky": None},
}
created = client.post("/simulation/unit_test/", json=body)
assert created.status_code == 201, created.text
unit_test_id = created.json()["simulation_unit_test_id"]

listed = client.get("/simulation/unit_test/", params={"id": unit_test_id})
assert listed.status_code == 200, listed.text
items = [SimulationUnitTestInstance.model_validate(t) for t in listed.json()["simulation_unit_tests"]]
assert [i.id for i in items] == [unit_test_id], items
assert items[0].name == name and items[0].max_interactions == 12
assert [(t.key, t.value) for t in items[0].tags] == [("flaky", None), ("suite", "sdk")]

found = client.get("/simulation/unit_test/search/", params={"query": name.upper()})
assert found.status_code == 200, found.text
hits = [SimulationUnitTest.model_validate(t) for t in found.json()["simulation_unit_tests"]]
assert [h.field_id for h in hits] == [unit_test_id], hits

updated = client.post(f"/simulation/unit_test/{unit_test_id}/", json={"max_interactions": 20})
assert updated.status_code == 204, updated.text

# A unit test set listing it: request bodies built by the SDK's models, answers read by them.
set_name = f"SDK set {uuid.uuid4().hex[:8]}"
set_body = SimulationCreateSimulationUnitTestSetRequest.model_validate(
    {"name": set_name, "description": None, "unit_test_runs": [{"unit_test_id": unit_test_id, "run_count": 3}], "tags": {"suite": "sdk"}}
).model_dump(mode="json", exclude_unset=True)
created_set = client.post("/simulation/unit_test_set/", json=set_body)
assert created_set.status_code == 201, created_set.text
set_id = SimulationCreateSimulationUnitTestSetResponse.model_validate(created_set.json()).simulation_unit_test_set_id

sets = SimulationGetSimulationUnitTestSetsResponse.model_validate(
    client.get("/simulation/unit_test_set/", params={"unit_test_id": unit_test_id}).json()
)
assert [s.id for s in sets.simulation_unit_test_sets] == [set_id], sets
assert sets.simulation_unit_test_sets[0].unit_test_runs[0].run_count == 3, sets
assert sets.filter_values is not None and unit_test_id in sets.filter_values.unit_test_ids, sets
found_sets = SimulationSearchSimulationUnitTestSetResponse.model_validate(
    client.get("/simulation/unit_test_set/search/", params={"query": set_name.lower()}).json()
)
assert [s.field_id for s in found_sets.simulation_unit_test_sets] == [set_id], found_sets

in_use = client.delete(f"/simulation/unit_test/{unit_test_id}/")
assert in_use.status_code == 400, in_use.text
patch = SimulationUpdateSimulationUnitTestSetRequest.model_validate({"name": set_name + " renamed"}).model_dump(
    mode="json", exclude_unset=True
)
assert client.post(f"/simulation/unit_test_set/{set_id}", json=patch).status_code == 204
assert client.delete(f"/simulation/unit_test_set/{set_id}").status_code == 204

deleted = client.delete(f"/simulation/unit_test/{unit_test_id}/")
assert deleted.status_code == 204, deleted.text
after = SimulationUnitTestInstance.model_validate(
    client.get("/simulation/unit_test/", params={"id": unit_test_id}).json()["simulation_unit_tests"][0]
)
assert after.is_deleted and after.max_interactions == 20, after

print("the SDK smoke test passed")
