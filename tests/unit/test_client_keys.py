"""Client JWK sets and signature checks of client-signed JWTs (SR-02, SR-08, FAPI-17)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from django_ciba.clients import keys as client_keys
from django_ciba.clients.keys import ClientJwtError, InvalidClientKeys, parse_jwks, verify_client_jwt
from django_ciba.core import outbound
from django_ciba.testing import make_client_key, sign_jwt


ALL = ["PS256", "ES256", "RS256", "ES384", "ES512"]


def client(jwks=None, jwks_uri=""):
    return SimpleNamespace(jwks=jwks, jwks_uri=jwks_uri)


def test_parse_accepts_rsa_and_ec_public_keys():
    keys = [make_client_key(alg)[1] for alg in ("PS256", "ES256", "ES384")]
    parsed = parse_jwks({"keys": keys})
    assert [key.key_id for key in parsed] == [key["kid"] for key in keys]
    assert parse_jwks(json.dumps({"keys": keys}))[0].key_id == keys[0]["kid"]


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ([], "JSON object"),
        ({"keys": {}}, "JSON object"),
        ("{not json", "not valid JSON"),
        ({"keys": []}, "no usable"),
        ({"keys": ["x"]}, "not a JSON object"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "private or symmetric"),
        ({"keys": [{"kty": "XYZ"}]}, "only RSA, EC and OKP"),
        ({"keys": [{"kty": "RSA", "n": "AQAB"}]}, "cannot be read"),
        ({"keys": [{"kty": "EC", "alg": "HS256", "crv": "P-256"}]}, "asymmetric"),
        ({"keys": [{"kty": "EC", "kid": 7}]}, "kid must be a string"),
    ],
)
def test_parse_refuses_bad_sets(document, words):
    with pytest.raises(InvalidClientKeys, match=words):
        parse_jwks(document)


def test_parse_refuses_private_keys_and_short_rsa_keys():
    private = jwt.algorithms.RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    with pytest.raises(InvalidClientKeys, match="private"):
        parse_jwks({"keys": [json.loads(private)]})
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(InvalidClientKeys, match="at least 2048 bits"):  # FAPI-17
        parse_jwks({"keys": [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(short))]})


def test_parse_refuses_a_repeated_kid_and_skips_encryption_keys():
    _, first = make_client_key("PS256", kid="same")
    _, second = make_client_key("ES256", kid="same")
    with pytest.raises(InvalidClientKeys, match="used twice"):
        parse_jwks({"keys": [first, second]})
    encryption = {**make_client_key("PS256")[1], "use": "enc"}
    assert [key.key_id for key in parse_jwks({"keys": [encryption, first]})] == ["same"]


def test_lenient_parse_skips_bad_keys():
    _, good = make_client_key("ES256")
    assert len(parse_jwks({"keys": [{"kty": "oct", "k": "eA"}, good]}, strict=False)) == 1


def test_signature_checked_with_the_key_fitting_kid_and_alg():
    rsa_key, rsa_jwk = make_client_key("PS256")
    ec_key, ec_jwk = make_client_key("ES256")
    holder = client({"keys": [rsa_jwk, ec_jwk]})
    header, claims = verify_client_jwt(sign_jwt({"n": 1}, ec_key, alg="ES256"), holder, algorithms=ALL)
    assert header["alg"] == "ES256" and claims == {"n": 1}
    token = sign_jwt({"n": 2}, rsa_key, alg="PS256", kid=rsa_jwk["kid"])
    assert verify_client_jwt(token, holder, algorithms=ALL)[1] == {"n": 2}


@pytest.mark.parametrize(
    ("make_token", "algorithms", "words"),
    [
        (lambda key: sign_jwt({}, key, alg="PS256"), ["ES256"], "not accepted"),
        (lambda key: sign_jwt({}, None, alg="none"), ALL + ["none"], "asymmetric"),
        (lambda key: sign_jwt({}, "k" * 32, alg="HS256"), ALL + ["HS256"], "asymmetric"),
        (lambda key: "a.b.c.d.e", ALL, "Encrypted or malformed"),
        (lambda key: "not-a-jwt", ALL, "malformed"),
        (lambda key: sign_jwt({}, key, alg="PS256")[:-6] + "AAAAAA", ALL, "verifies"),
        (lambda key: sign_jwt({}, key, alg="RS256"), ALL, "verifies"),  # the JWK says alg PS256
        (lambda key: sign_jwt({}, make_client_key("PS256")[0], alg="PS256"), ALL, "verifies"),
        (lambda key: sign_jwt({}, key, alg="PS256", kid="unknown"), ALL, "verifies"),
    ],
)
def test_refused_tokens(make_token, algorithms, words):
    key, public = make_client_key("PS256")
    with pytest.raises(ClientJwtError, match=words):
        verify_client_jwt(make_token(key), client({"keys": [public]}), algorithms=algorithms)


def test_client_without_keys():
    key, _ = make_client_key("PS256")
    with pytest.raises(ClientJwtError, match="no public keys"):
        verify_client_jwt(sign_jwt({}, key), client(), algorithms=ALL)


@pytest.fixture
def published(monkeypatch):
    """A jwks_uri served by a stand-in for outbound.get_document; counts the fetches."""
    state = SimpleNamespace(keys=[], fetches=[], fail=None)

    def get_document(url, *, max_bytes, **kwargs):
        state.fetches.append((url, max_bytes))
        if state.fail:
            raise state.fail
        return json.dumps({"keys": state.keys}).encode()

    monkeypatch.setattr(outbound, "get_document", get_document)
    return state


URI = "https://rp.example.com/jwks.json"


def test_jwks_uri_is_cached(published):
    key, public = make_client_key("ES256")
    published.keys = [public]
    for _ in range(3):
        verify_client_jwt(
            sign_jwt({}, key, alg="ES256", kid=public["kid"]), client(jwks_uri=URI), algorithms=ALL
        )
    assert published.fetches == [(URI, 65536)]


def test_unknown_kid_refetches_once_then_waits(published, ciba_settings):
    old_key, old = make_client_key("ES256")
    published.keys = [old]
    holder = client(jwks_uri=URI)
    verify_client_jwt(sign_jwt({}, old_key, alg="ES256", kid=old["kid"]), holder, algorithms=ALL)
    ciba_settings.set(JWKS_REFRESH_INTERVAL=0)
    new_key, new = make_client_key("ES256")
    published.keys = [new]  # the client rotated its key
    verify_client_jwt(sign_jwt({}, new_key, alg="ES256", kid=new["kid"]), holder, algorithms=ALL)
    assert len(published.fetches) == 2
    ciba_settings.set(JWKS_REFRESH_INTERVAL=3600)
    with pytest.raises(ClientJwtError):
        verify_client_jwt(sign_jwt({}, old_key, alg="ES256", kid="gone"), holder, algorithms=ALL)
    assert len(published.fetches) == 2  # no refetch storm for unknown kids


def test_bad_signature_with_known_keys_does_not_refetch(published, ciba_settings):
    key, public = make_client_key("ES256")
    published.keys = [public]
    ciba_settings.set(JWKS_REFRESH_INTERVAL=0)
    holder = client(jwks_uri=URI)
    with pytest.raises(ClientJwtError):
        verify_client_jwt(sign_jwt({}, make_client_key("ES256")[0], alg="ES256"), holder, algorithms=ALL)
    assert len(published.fetches) == 1


def test_fetch_failures_are_client_jwt_errors(published):
    key, _ = make_client_key("ES256")
    published.fail = outbound.TransportError("Outbound GET to https://rp.example.com failed: X.")
    with pytest.raises(ClientJwtError, match="could not be fetched"):
        verify_client_jwt(sign_jwt({}, key, alg="ES256"), client(jwks_uri=URI), algorithms=ALL)
    published.fail = None
    published.keys = "not a list"
    with pytest.raises(ClientJwtError, match="unusable"):
        client_keys.fetch_jwks("https://other.example.com/jwks.json")
