"""OpenID discovery with the CIBA metadata (DISC-01..DISC-07)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.test import override_settings


DISCOVERY_URL = "/o/.well-known/openid-configuration"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
ISSUER = settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"]


def provider(**changes):
    value = {**settings.OAUTH2_PROVIDER, **changes}
    return {key: item for key, item in value.items() if item is not None}


@pytest.fixture
def document(client):
    response = client.get(DISCOVERY_URL)
    assert response.status_code == 200, response.content
    return response.json()


def test_returns_200_json(client):
    # DISC-07
    response = client.get(DISCOVERY_URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert isinstance(response.json(), dict)


def test_without_trailing_slash_variant(client):
    # DISC-07: both spellings of the well-known path serve the CIBA document.
    response = client.get(DISCOVERY_URL + "/")
    assert response.status_code == 200
    assert "backchannel_authentication_endpoint" in response.json()


def test_issuer_is_the_configured_issuer(document):
    # DISC-07
    assert document["issuer"] == ISSUER


def test_standard_members_present(document):
    # DISC-07: token_endpoint, jwks_uri and a well-formed scopes_supported.
    assert document["token_endpoint"] == f"{ISSUER}/token/"
    assert document["jwks_uri"].startswith(ISSUER)
    assert isinstance(document["scopes_supported"], list) and "openid" in document["scopes_supported"]


def test_backchannel_endpoint_is_absolute_on_issuer_host(document):
    # DISC-01: absolute URL, on the issuer's scheme and host, pointing at the real endpoint.
    endpoint = urlparse(document["backchannel_authentication_endpoint"])
    issuer = urlparse(ISSUER)
    assert (endpoint.scheme, endpoint.netloc) == (issuer.scheme, issuer.netloc)
    assert endpoint.path == "/o/bc-authorize"


def test_backchannel_endpoint_follows_https_issuer(client):
    # DISC-01: with an https issuer on another host, the endpoint is https on that host
    # (not the host of the discovery request).
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_ISS_ENDPOINT="https://op.example.com/o")):
        document = client.get(DISCOVERY_URL).json()
    assert document["issuer"] == "https://op.example.com/o"
    assert document["backchannel_authentication_endpoint"] == "https://op.example.com/o/bc-authorize"


def test_backchannel_endpoint_without_issuer_uses_request_host(client):
    # DISC-01: without OIDC_ISS_ENDPOINT the URL is still absolute (built from the request).
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_ISS_ENDPOINT=None)):
        document = client.get(DISCOVERY_URL, secure=True).json()
    assert document["backchannel_authentication_endpoint"] == "https://testserver/o/bc-authorize"


def test_delivery_modes_supported(document):
    # DISC-02: a non-empty JSON array of poll / ping / push.
    modes = document["backchannel_token_delivery_modes_supported"]
    assert isinstance(modes, list) and modes
    assert set(modes) <= {"poll", "ping", "push"}
    assert "poll" in modes


def test_delivery_modes_follow_the_setting(client, ciba_settings):
    # DISC-02
    ciba_settings.set(DELIVERY_MODES=["poll", "ping"])
    document = client.get(DISCOVERY_URL).json()
    assert document["backchannel_token_delivery_modes_supported"] == ["poll", "ping"]


def test_user_code_parameter_supported_is_boolean(document, client, ciba_settings):
    # DISC-04
    assert document["backchannel_user_code_parameter_supported"] is False
    ciba_settings.set(USER_CODE_SUPPORTED=True, USER_CODE_VERIFIER="hmac.compare_digest")
    assert client.get(DISCOVERY_URL).json()["backchannel_user_code_parameter_supported"] is True


def test_grant_types_supported_contains_ciba(document):
    # DISC-05: the CIBA grant and refresh_token are advertised, without duplicates.
    grant_types = document["grant_types_supported"]
    assert CIBA_GRANT in grant_types
    assert "refresh_token" in grant_types
    assert len(grant_types) == len(set(grant_types))


def test_grant_types_keep_configured_grants(client):
    # DISC-05: the host's OAUTH2_GRANT_TYPES_SUPPORTED stays and gets the CIBA grant added once.
    configured = ["authorization_code", "refresh_token", CIBA_GRANT]
    with override_settings(OAUTH2_PROVIDER=provider(OAUTH2_GRANT_TYPES_SUPPORTED=configured)):
        grant_types = client.get(DISCOVERY_URL).json()["grant_types_supported"]
    assert grant_types.count(CIBA_GRANT) == 1
    assert "authorization_code" in grant_types


def test_token_endpoint_auth_methods_cover_backchannel(document):
    # DISC-06: the backchannel endpoint uses the token endpoint's methods.
    assert {"client_secret_basic", "client_secret_post"} <= set(
        document["token_endpoint_auth_methods_supported"]
    )


def test_acr_values_supported_only_when_configured(document, client, ciba_settings):
    # IDT-04: acr_values_supported appears only when configured.
    assert "acr_values_supported" not in document
    ciba_settings.set(ACR_VALUES_SUPPORTED=["urn:example:loa:1", "urn:example:loa:2"])
    document = client.get(DISCOVERY_URL).json()
    assert document["acr_values_supported"] == ["urn:example:loa:1", "urn:example:loa:2"]


def test_oidc_disabled_returns_error_json_not_500(client):
    # DISC-07: without OIDC (check E001) the document is not served, and the CIBA view does not
    # crash: 503 temporarily_unavailable JSON (test_integration_checks covers DEBUG on and off).
    with override_settings(OAUTH2_PROVIDER=provider(OIDC_ENABLED=False)):
        response = client.get(DISCOVERY_URL)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


def test_signed_request_algorithms_are_advertised_without_symmetric_ones(document, ciba_settings):
    # DISC-03: the request signing algorithms, never "none" and never HS*.
    assert document["backchannel_authentication_request_signing_alg_values_supported"][:3] == [
        "PS256",
        "ES256",
        "RS256",
    ]
    ciba_settings.set(SIGNING_ALGORITHMS=["PS256", "HS256", "none", "ES256"])
    refreshed = document_now()
    assert refreshed["backchannel_authentication_request_signing_alg_values_supported"] == ["PS256", "ES256"]
    assert refreshed["token_endpoint_auth_signing_alg_values_supported"] == ["PS256", "ES256"]


def test_private_key_jwt_is_listed_with_dots_methods(document):
    # DISC-06: one list for the token and the backchannel endpoint.
    methods = document["token_endpoint_auth_methods_supported"]
    assert methods[:2] == ["client_secret_post", "client_secret_basic"]
    assert "private_key_jwt" in methods
    assert document["token_endpoint_auth_signing_alg_values_supported"]


def test_registration_endpoint_and_subject_types(document, ciba_settings):
    assert document["registration_endpoint"] == f"{ISSUER}/register"
    assert document["subject_types_supported"] == ["public", "pairwise"]
    ciba_settings.set(SUBJECT_TYPES_SUPPORTED=["public"])
    assert document_now()["subject_types_supported"] == ["public"]


def document_now():
    from django.test import Client

    response = Client().get(DISCOVERY_URL)
    assert response.status_code == 200
    return response.json()
