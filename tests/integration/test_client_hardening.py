"""Client-side hardening against real services: proven pairwise sectors and bounded jwks_uri fetches.

The example project is served by ``runserver`` on its own PostgreSQL database with the Redis cache;
the HTTPS callback receiver (trusted through ``REQUESTS_CA_BUNDLE``) publishes the clients' JWK
sets and sector identifier documents. Nothing is mocked.

1. REG-06, OIDC Core §8.1: a client naming another client's ``jwks_uri`` while authenticating with
   a secret, or naming a sector document that lists nothing it uses, is refused pairwise.
2. REG-07, BC-03: forged client assertions naming a client whose ``jwks_uri`` fails make the OP
   fetch it once, not once per request (the failure is cached in Redis and backs off).
"""

from __future__ import annotations

import json
import types

import pytest

from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.testing import client_assertion, make_client_key
from tests.integration.receiver import Reply
from tests.integration.services import Deadline
from tests.integration.test_delivery_flows import SESSION
from tests.integration.test_registration_flows import discovery, initial_access_token


pytestmark = pytest.mark.integration

TEST_BUDGET = 60
USERNAME = "alice"
SETTINGS = {"JWKS_FAILURE_BACKOFF": 300, "JWKS_REFRESH_INTERVAL": 30}


@pytest.fixture
def op(served_project):
    deadline = Deadline(TEST_BUDGET, "the client hardening checks")
    project = served_project
    project.deadline = deadline
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(SETTINGS)
    project.migrate()
    project.create_user(USERNAME, "alice@example.com", "pw")
    project.start_web(timeout=deadline.left(30))
    return project


def register(project, metadata: dict):
    return SESSION.post(
        discovery(project)["registration_endpoint"],
        data=json.dumps(metadata),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {initial_access_token(project)}",
        },
        timeout=15,
    )


def json_reply(document) -> Reply:
    return Reply(200, headers={"Content-Type": "application/json"}, body=json.dumps(document).encode())


POLL = {
    "backchannel_token_delivery_mode": "poll",
    "grant_types": [CIBA_GRANT_TYPE],
    "response_types": [],
    "subject_type": "pairwise",
}


def test_another_clients_jwks_uri_or_sector_document_gives_no_pairwise_sector(op, callback_receiver):
    victim_jwks = callback_receiver.url("/victim/jwks.json")
    victim_sector = callback_receiver.url("/victim/sector.json")
    callback_receiver.script("/victim/sector.json", json_reply([victim_jwks]))
    victim = register(op, {**POLL, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": victim_jwks})
    assert victim.status_code == 201, victim.text

    # Secret-based client naming the victim's jwks_uri: no sector to prove.
    response = register(op, {**POLL, "jwks_uri": victim_jwks})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    assert response.json()["error_description"].startswith("subject_type:")

    # ... and through the victim's sector document: still nothing it uses is listed.
    response = register(op, {**POLL, "jwks_uri": victim_jwks, "sector_identifier_uri": victim_sector})
    assert response.status_code == 400, response.text
    assert response.json()["error_description"].startswith("sector_identifier_uri:")

    # A private_key_jwt client with its own keys, naming the victim's document: not listed.
    own_jwks = callback_receiver.url("/attacker/jwks.json")
    response = register(
        op,
        {
            **POLL,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": own_jwks,
            "sector_identifier_uri": victim_sector,
        },
    )
    assert response.status_code == 400, response.text
    assert "does not list the jwks_uri" in response.json()["error_description"]
    assert len(callback_receiver.requests("/victim/sector.json")) == 1  # fetched for the last one only

    clients = op.shell_json(
        "import json; from django_ciba.models import CibaClient; "
        "print(json.dumps(list(CibaClient.objects.values_list('jwks_uri', flat=True))))"
    )
    assert clients == [victim_jwks]


def test_forged_assertions_fetch_a_failing_jwks_uri_once(op, callback_receiver):
    callback_receiver.script("/down/jwks.json", Reply(503))
    registered = register(
        op,
        {
            **POLL,
            "subject_type": "public",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": callback_receiver.url("/down/jwks.json"),
        },
    )
    assert registered.status_code == 201, registered.text
    client = types.SimpleNamespace(client_id=registered.json()["client_id"])
    forger_key, _ = make_client_key("ES256", kid="forged")
    for number in range(8):
        forged = client_assertion(client, forger_key, audience=op.issuer, alg="ES256", kid=f"forged-{number}")
        response = SESSION.post(
            f"{op.issuer}/bc-authorize",
            data={"scope": "openid", "login_hint": USERNAME, **forged},
            timeout=15,
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
    fetches = callback_receiver.requests("/down/jwks.json")
    assert len(fetches) == 1, fetches
    assert callback_receiver.errors == []
