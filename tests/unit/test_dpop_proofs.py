"""DPoP proof checks (RFC 9449 §4.3, django_ciba.tokens.dpop) and JWK thumbprints (RFC 7638).

Each test names the check of RFC 9449 §4.3 (numbered as in the RFC's list) or the section it covers.
Proofs are made here with PyJWT and fresh keys; thumbprints are compared with jwcrypto's
independent implementation.
"""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.cache import caches
from jwcrypto import jwk as jwcrypto_jwk

from django_ciba.core.jwk import InvalidClientKeys, thumbprint
from django_ciba.tokens import dpop


URL = "https://op.example.com/o/token/"
NOW = 1_800_000_000


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(private_key) -> dict:
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    if isinstance(public, ec.EllipticCurvePublicKey):
        return json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    return json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))


def proof(key=None, *, alg="ES256", header=None, drop=(), signer=None, **claims) -> str:
    key = key or ec_key()
    body = {"jti": str(uuid.uuid4()), "htm": "POST", "htu": URL, "iat": NOW, **claims}
    for name in drop:
        body.pop(name, None)
    head = {"typ": "dpop+jwt", "jwk": public_jwk(key), **(header or {})}
    return jwt.encode(body, signer or key, algorithm=alg, headers=head)


def check(values, **kwargs):
    kwargs.setdefault("method", "POST")
    kwargs.setdefault("url", URL)
    kwargs.setdefault("now", NOW)
    return dpop.check_proof(values if isinstance(values, list) else [values], **kwargs)


def refused(values, message: str, **kwargs) -> dpop.InvalidProof:
    with pytest.raises(dpop.InvalidProof, match=message) as caught:
        check(values, **kwargs)
    return caught.value


def test_a_valid_proof_names_its_key_by_thumbprint():
    key = ec_key()
    checked = check(proof(key))
    expected = jwcrypto_jwk.JWK(**public_jwk(key)).thumbprint()
    assert checked.jkt == expected
    assert checked.iat == NOW


@pytest.mark.parametrize("algorithm", ["ES256", "PS256", "RS256", "EdDSA"])
def test_each_accepted_algorithm_verifies(algorithm):
    key = {
        "ES256": ec_key,
        "PS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "EdDSA": ed25519.Ed25519PrivateKey.generate,
    }[algorithm]()
    assert check(proof(key, alg=algorithm)).jkt == jwcrypto_jwk.JWK(**public_jwk(key)).thumbprint()


def test_check_1_exactly_one_dpop_header():
    one = proof()
    refused([one, one], "Exactly one DPoP header")
    refused([], "Exactly one DPoP header")


@pytest.mark.parametrize("value", ["", "not-a-jwt", "a.b", "a.b.c.d", "x" * 9000])
def test_check_2_a_single_well_formed_jwt(value):
    refused(value, "compact JWS|header cannot be read")


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_check_3_required_claims(claim):
    refused(proof(drop=[claim]), "lacks")


def test_check_4_typ_is_dpop_jwt():
    refused(proof(header={"typ": "JWT"}), "typ")


def test_check_5_alg_is_asymmetric_never_none_or_hmac():
    refused(proof(alg="HS256", signer="a-shared-secret-of-32-characters!!"), "alg")
    unsigned = jwt.encode(
        {"jti": "1", "htm": "POST", "htu": URL, "iat": NOW},
        None,
        algorithm="none",
        headers={"typ": "dpop+jwt", "jwk": public_jwk(ec_key())},
    )
    refused(unsigned, "alg|compact JWS")


def test_check_5_the_key_fits_the_algorithm():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = proof(rsa_key, alg="PS256", header={"jwk": public_jwk(ec_key())})
    refused(forged, "does not fit")


def test_check_6_signature_verifies_with_the_header_key():
    signer, claimed = ec_key(), ec_key()
    refused(proof(signer, header={"jwk": public_jwk(claimed)}), "signature")


def test_check_7_the_jwk_holds_no_private_key():
    key = ec_key()
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    assert "d" in private
    refused(proof(key, header={"jwk": private}), "usable public key")


def test_check_8_htm_is_the_request_method():
    refused(proof(htm="GET"), "htm")
    assert check(proof(htm="GET"), method="get")


def test_check_9_htu_is_the_request_url_without_query_and_fragment():
    refused(proof(htu="https://op.example.com/o/userinfo/"), "htu")
    refused(proof(htu="http://op.example.com/o/token/"), "htu")
    # Syntax- and scheme-based normalisation (RFC 3986 §6.2.2, §6.2.3); query and fragment ignored.
    assert check(proof(htu="HTTPS://OP.Example.com:443/o/token/?x=1#top"))
    assert check(proof(htu=URL), url="https://op.example.com/o/token/?grant=1")
    refused(proof(htu="https://op.example.com:8443/o/token/"), "htu")


def test_check_10_server_nonce():
    with pytest.raises(dpop.NonceRequired) as missing:
        check(proof(), nonces={"n-1"})
    assert missing.value.error == "use_dpop_nonce"
    with pytest.raises(dpop.NonceRequired):
        check(proof(nonce="stale"), nonces={"n-1"})
    assert check(proof(nonce="n-1"), nonces={"n-1", "n-0"})


def test_check_11_iat_window():
    refused(proof(iat=NOW - dpop.MAX_AGE - dpop.LEEWAY - 1), "iat")
    refused(proof(iat=NOW + dpop.LEEWAY + 1), "iat")
    refused(proof(iat="1800000000"), "numeric iat")
    assert check(proof(iat=NOW - dpop.MAX_AGE))
    assert check(proof(iat=NOW + dpop.LEEWAY))


def test_check_12_ath_is_the_access_token_hash():
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    # RFC 9449 §7.1's example: this access token hashes to this ath.
    assert dpop.access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    refused(proof(), "ath", access_token=token)
    refused(proof(ath="wrong"), "ath", access_token=token)
    assert check(proof(ath=dpop.access_token_hash(token)), access_token=token)


def test_section_11_1_a_proof_is_used_once():
    remember = dpop.cache_jti_recorder(caches["default"])
    one = proof()
    assert check(one, remember_jti=remember)
    refused(one, "used before", remember_jti=remember)
    assert check(proof(), remember_jti=remember)  # another jti


def test_messages_never_echo_the_proof():
    value = proof(htm="GET")
    error = refused(value, "htm")
    assert value not in str(error) and "GET" not in str(error)


def test_rfc_7638_thumbprint_uses_only_the_required_members():
    key = ec_key()
    member = public_jwk(key)
    assert thumbprint({**member, "kid": "k1", "alg": "ES256", "use": "sig"}) == thumbprint(member)
    rsa_member = public_jwk(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert thumbprint(rsa_member) == jwcrypto_jwk.JWK(**rsa_member).thumbprint()
    okp_member = public_jwk(ed25519.Ed25519PrivateKey.generate())
    assert thumbprint(okp_member) == jwcrypto_jwk.JWK(**okp_member).thumbprint()
    with pytest.raises(InvalidClientKeys):
        thumbprint({"kty": "oct", "k": "c2VjcmV0"})


def test_the_real_clock_is_not_consulted():
    # The caller passes the time: a proof made now is refused against a clock an hour ahead.
    fresh = proof(iat=int(time.time()))
    assert check(fresh, now=time.time())
    refused(fresh, "iat", now=time.time() + 3600)
