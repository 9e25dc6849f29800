"""Pairwise sectors must be proven by the client (REG-06, DISC-09, OIDC Core §8.1, OIDC Registration §5).

The same rules hold at dynamic registration and its updates (RFC 7591, RFC 7592), in the admin and
in ``ciba_create_client``: a ``sector_identifier_uri`` must list a URL the client really uses (a push
client's notification endpoint, or the ``jwks_uri`` of a ``private_key_jwt`` client); without one,
the sector is the host of such a URL; anything else is refused. Registrations stored before keep
their subjects and are listed by check W085.
"""

from __future__ import annotations

import json
from io import StringIO
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from django_ciba.checks.clients import check_pairwise_sectors
from django_ciba.clients import subjects
from django_ciba.core import outbound
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthMethod, CibaClient
from django_ciba.models.sectors import legacy_sector, proven_sector
from django_ciba.testing import create_ciba_client


pytestmark = pytest.mark.django_db

REGISTER = "/o/register"
CLIENTS = "/admin/django_ciba/cibaclient/"
JSON = "application/json"
VICTIM_JWKS = "https://keys.victim.example.com/jwks.json"
VICTIM_SECTOR = "https://victim.example.com/sector.json"
OWN_JWKS = "https://keys.attacker.example.net/jwks.json"
NOTIFY = "https://rp.example.org/ciba/cb"
POLL = {"backchannel_token_delivery_mode": "poll", "grant_types": [CIBA_GRANT_TYPE]}
PING = {**POLL, "backchannel_token_delivery_mode": "ping", "backchannel_client_notification_endpoint": NOTIFY}
PUSH = {"backchannel_token_delivery_mode": "push", "backchannel_client_notification_endpoint": NOTIFY}
KEYED = {"token_endpoint_auth_method": "private_key_jwt", "subject_type": "pairwise"}


@pytest.fixture(autouse=True)
def open_registration(ciba_settings):
    ciba_settings.set(REGISTRATION_OPEN=True)


@pytest.fixture
def documents(monkeypatch):
    """Serve sector identifier documents from a dict instead of the network; record the fetches."""
    served: dict[str, bytes] = {}
    served_fetches: list[str] = []

    def get_document(url, **kwargs):
        served_fetches.append(url)
        if url not in served:
            raise outbound.OutboundError("GET answered HTTP 404.")
        return served[url]

    monkeypatch.setattr(outbound, "get_document", get_document)
    return SimpleNamespace(served=served, fetches=served_fetches)


def register(http, metadata):
    return http.post(REGISTER, data=json.dumps(metadata), content_type=JSON)


def registered(http, metadata):
    response = register(http, metadata)
    assert response.status_code == 201, response.content
    return response.json()


def assert_refused(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_client_metadata"
    assert body["error_description"].startswith(f"{field}:"), body
    return body["error_description"]


def stored(body) -> CibaClient:
    return CibaClient.objects.select_related("application").get(application__client_id=body["client_id"])


@pytest.fixture
def victim(client):
    """A pairwise client that proves its sector: private_key_jwt with its own jwks_uri."""
    return stored(registered(client, {**POLL, **KEYED, "jwks_uri": VICTIM_JWKS}))


# --------------------------------------------------------------------------------------------
# The finding: naming another client's URL gave its subjects


@pytest.mark.parametrize("base", [POLL, PING], ids=["poll", "ping"])
def test_client_naming_another_clients_jwks_uri_with_a_secret_is_refused_pairwise(client, victim, base):
    # REG-06: the jwks_uri host is a sector only for a client that authenticates with its keys.
    metadata = {**base, "jwks_uri": VICTIM_JWKS, "subject_type": "pairwise"}
    description = assert_refused(register(client, metadata), "subject_type")
    assert "private_key_jwt" in description
    assert CibaClient.objects.count() == 1  # only the victim
    # As a public client the same metadata is fine: it gets no pairwise sector at all.
    assert registered(client, {**metadata, "subject_type": "public"})


def test_ping_notification_endpoint_proves_no_sector(client):
    # A ping client can fetch its tokens without ever receiving a ping, so it proves nothing.
    assert_refused(register(client, {**PING, "subject_type": "pairwise"}), "subject_type")


def test_another_clients_sector_identifier_uri_is_refused(client, victim, documents):
    documents.served[VICTIM_SECTOR] = json.dumps([VICTIM_JWKS]).encode()
    # A secret-based client naming the victim's jwks_uri and sector document.
    metadata = {
        **POLL,
        "jwks_uri": VICTIM_JWKS,
        "subject_type": "pairwise",
        "sector_identifier_uri": VICTIM_SECTOR,
    }
    assert_refused(register(client, metadata), "sector_identifier_uri")
    # A private_key_jwt client whose own jwks_uri the document does not list.
    metadata = {**POLL, **KEYED, "jwks_uri": OWN_JWKS, "sector_identifier_uri": VICTIM_SECTOR}
    description = assert_refused(register(client, metadata), "sector_identifier_uri")
    assert "does not list the jwks_uri" in description
    assert CibaClient.objects.count() == 1


def test_push_client_with_a_secret_cannot_prove_a_sector_with_its_jwks_uri(client, documents):
    documents.served[VICTIM_SECTOR] = json.dumps([VICTIM_JWKS]).encode()
    metadata = {
        **PUSH,
        "jwks_uri": VICTIM_JWKS,
        "subject_type": "pairwise",
        "sector_identifier_uri": VICTIM_SECTOR,
    }
    description = assert_refused(register(client, metadata), "sector_identifier_uri")
    assert "backchannel_client_notification_endpoint" in description


# --------------------------------------------------------------------------------------------
# What a client proves still works


def test_private_key_jwt_client_gets_its_jwks_uri_host(client, victim):
    assert victim.sector_identifier == "keys.victim.example.com"
    other = stored(registered(client, {**POLL, **KEYED, "jwks_uri": OWN_JWKS}))
    assert other.sector_identifier == "keys.attacker.example.net"
    alice = get_user_model().objects.create_user("alice")
    assert subjects.subject_for(alice, victim.application) != subjects.subject_for(alice, other.application)


def test_push_client_gets_its_notification_endpoint_host(client):
    assert stored(registered(client, {**PUSH, "subject_type": "pairwise"})).sector_identifier == (
        "rp.example.org"
    )


@pytest.mark.parametrize(
    "metadata, listed",
    [
        ({**POLL, **KEYED, "jwks_uri": OWN_JWKS}, OWN_JWKS),
        ({**PUSH, "subject_type": "pairwise"}, NOTIFY),
        ({**PING, **KEYED, "jwks_uri": OWN_JWKS}, OWN_JWKS),
    ],
    ids=["poll-private_key_jwt", "push", "ping-private_key_jwt"],
)
def test_sector_identifier_uri_listing_a_used_url_is_accepted(client, documents, metadata, listed):
    sector_uri = "https://sector.attacker.example.net/uris.json"
    documents.served[sector_uri] = json.dumps(["https://unrelated.example/x", listed]).encode()
    ciba = stored(registered(client, {**metadata, "sector_identifier_uri": sector_uri}))
    assert ciba.sector_identifier == "sector.attacker.example.net"
    assert documents.fetches == [sector_uri]


# --------------------------------------------------------------------------------------------
# RFC 7592 updates: the proof must still hold


def put(http, body, metadata):
    return http.put(
        urlsplit(body["registration_client_uri"]).path,
        data=json.dumps({**metadata, "client_id": body["client_id"]}),
        content_type=JSON,
        HTTP_AUTHORIZATION=f"Bearer {body['registration_access_token']}",
    )


def test_update_to_a_secret_keeping_the_jwks_uri_is_refused(client):
    metadata = {**POLL, **KEYED, "jwks_uri": OWN_JWKS}
    body = registered(client, metadata)
    response = put(client, body, {**metadata, "token_endpoint_auth_method": "client_secret_basic"})
    assert_refused(response, "subject_type")
    assert stored(body).token_endpoint_auth_method == AuthMethod.PRIVATE_KEY_JWT  # unchanged
    assert put(client, body, metadata).status_code == 200  # the same metadata is still fine


def test_update_to_a_sector_identifier_uri_not_listing_a_used_url_is_refused(client, documents):
    metadata = {**POLL, **KEYED, "jwks_uri": OWN_JWKS}
    body = registered(client, metadata)
    documents.served[VICTIM_SECTOR] = json.dumps([VICTIM_JWKS]).encode()
    assert_refused(
        put(client, body, {**metadata, "sector_identifier_uri": VICTIM_SECTOR}), "sector_identifier_uri"
    )
    assert stored(body).sector_identifier == "keys.attacker.example.net"


# --------------------------------------------------------------------------------------------
# The rules themselves


@pytest.mark.parametrize(
    "mode, method, jwks_uri, notify, sector",
    [
        ("poll", "private_key_jwt", VICTIM_JWKS, "", "keys.victim.example.com"),
        ("poll", "client_secret_basic", VICTIM_JWKS, "", ""),
        ("poll", "", VICTIM_JWKS, "", ""),  # any method: not necessarily private_key_jwt
        ("ping", "client_secret_post", VICTIM_JWKS, NOTIFY, ""),
        ("ping", "private_key_jwt", VICTIM_JWKS, NOTIFY, "keys.victim.example.com"),
        ("push", "client_secret_basic", "", NOTIFY, "rp.example.org"),
        ("push", "private_key_jwt", VICTIM_JWKS, NOTIFY, "rp.example.org"),
    ],
)
def test_proven_sector(mode, method, jwks_uri, notify, sector):
    fields = SimpleNamespace(
        subject_type="pairwise",
        delivery_mode=mode,
        token_endpoint_auth_method=method,
        jwks_uri=jwks_uri,
        notification_endpoint=notify,
        sector_identifier_uri="",
    )
    assert proven_sector(fields) == sector
    fields.sector_identifier_uri = VICTIM_SECTOR
    assert proven_sector(fields) == ("victim.example.com" if sector else "")


# --------------------------------------------------------------------------------------------
# Registrations stored before: same subjects, listed by W085


def test_stored_unproven_client_keeps_its_subjects_and_is_listed_by_w085(victim):
    # Rows written before this check (here directly, without validation) keep their sector, so the
    # subjects their users were given stay the same; the operator is told which clients they are.
    legacy_app, secret = create_ciba_client("Legacy", subject_type="pairwise", jwks_uri=VICTIM_JWKS)
    legacy = legacy_app.ciba
    assert proven_sector(legacy) == "" and legacy.sector_identifier == legacy_sector(legacy)
    assert legacy.sector_identifier == "keys.victim.example.com"
    alice = get_user_model().objects.create_user("alice")
    first = subjects.subject_for(alice, legacy_app)
    assert subjects.subject_for(alice, legacy_app) == first
    messages = check_pairwise_sectors(databases=["default"])
    assert [message.id for message in messages] == ["django_ciba.W085"]
    text = messages[0].msg + messages[0].hint
    assert legacy_app.client_id in text and victim.application.client_id not in text
    assert secret not in text
    assert check_pairwise_sectors(databases=None) == []  # a database check: only with --database


def test_w085_is_silent_when_every_pairwise_client_proves_its_sector(victim):
    create_ciba_client("Public", jwks_uri=VICTIM_JWKS)
    assert check_pairwise_sectors(databases=["default"]) == []


# --------------------------------------------------------------------------------------------
# Admin


@pytest.fixture
def admin_http(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


def admin_data(ciba: CibaClient, **changes) -> dict[str, str]:
    data = {
        "application": str(ciba.application.pk),
        "enabled": "on",
        "delivery_mode": ciba.delivery_mode,
        "notification_endpoint": ciba.notification_endpoint,
        "token_endpoint_auth_method": ciba.token_endpoint_auth_method,
        "jwks_uri": ciba.jwks_uri,
        "subject_type": ciba.subject_type,
        "sector_identifier_uri": ciba.sector_identifier_uri,
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def test_admin_refuses_pairwise_for_a_client_proving_no_sector(admin_http):
    app, _ = create_ciba_client("Secret RP", jwks_uri=VICTIM_JWKS)
    response = admin_http.post(
        f"{CLIENTS}{app.ciba.pk}/change/", admin_data(app.ciba, subject_type="pairwise")
    )
    assert response.status_code == 200
    assert "Pairwise subjects need a sector the client proves" in response.content.decode()
    app.ciba.refresh_from_db()
    assert app.ciba.subject_type == "public"


def test_admin_can_still_disable_a_stored_unproven_client(admin_http):
    app, _ = create_ciba_client("Legacy", subject_type="pairwise", jwks_uri=VICTIM_JWKS)
    response = admin_http.post(f"{CLIENTS}{app.ciba.pk}/change/", admin_data(app.ciba, enabled=None))
    assert response.status_code == 302, response.content
    app.ciba.refresh_from_db()
    assert app.ciba.enabled is False and app.ciba.sector_identifier == "keys.victim.example.com"


def test_admin_fetches_the_sector_identifier_uri(admin_http, documents):
    app, _ = create_ciba_client("Keyed", auth_method="private_key_jwt", jwks_uri=OWN_JWKS)
    url = f"{CLIENTS}{app.ciba.pk}/change/"
    data = admin_data(app.ciba, subject_type="pairwise", sector_identifier_uri=VICTIM_SECTOR)
    documents.served[VICTIM_SECTOR] = json.dumps([VICTIM_JWKS]).encode()
    response = admin_http.post(url, data)
    assert response.status_code == 200 and "does not list the jwks_uri" in response.content.decode()
    documents.served[VICTIM_SECTOR] = json.dumps([OWN_JWKS]).encode()
    assert admin_http.post(url, data).status_code == 302
    app.ciba.refresh_from_db()
    assert app.ciba.sector_identifier == "victim.example.com"
    assert documents.fetches == [VICTIM_SECTOR, VICTIM_SECTOR]


# --------------------------------------------------------------------------------------------
# ciba_create_client


def create(*args: str) -> dict:
    out = StringIO()
    call_command("ciba_create_client", "--name", "RP", *args, stdout=out)
    return json.loads(out.getvalue())


def test_create_client_refuses_pairwise_without_a_proven_sector():
    with pytest.raises(CommandError, match="subject_type"):
        create("--subject-type", "pairwise", "--jwks-uri", VICTIM_JWKS)
    assert not CibaClient.objects.exists()


def test_create_client_pairwise_with_private_key_jwt_and_sector_identifier_uri(documents):
    data = create("--subject-type", "pairwise", "--auth-method", "private_key_jwt", "--jwks-uri", OWN_JWKS)
    assert data["subject_type"] == "pairwise"
    assert CibaClient.objects.get(application__client_id=data["client_id"]).sector_identifier == (
        "keys.attacker.example.net"
    )
    documents.served[VICTIM_SECTOR] = json.dumps([VICTIM_JWKS]).encode()
    args = ("--subject-type", "pairwise", "--auth-method", "private_key_jwt", "--jwks-uri", OWN_JWKS)
    with pytest.raises(CommandError, match="sector_identifier_uri"):
        create(*args, "--sector-identifier-uri", VICTIM_SECTOR)
    documents.served[VICTIM_SECTOR] = json.dumps([OWN_JWKS]).encode()
    data = create(*args, "--sector-identifier-uri", VICTIM_SECTOR)
    assert CibaClient.objects.get(application__client_id=data["client_id"]).sector_identifier == (
        "victim.example.com"
    )
