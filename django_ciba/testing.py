"""Helpers for testing a CIBA integration (and for django-ciba's own tests).

Plain functions work with any test runner; with pytest installed, ``pytest_plugins =
["django_ciba.testing"]`` in a conftest also provides the ``ciba_settings`` fixture, which overrides
single CIBA keys for one test.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote, urlencode

from django.test import override_settings
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings

from django_ciba.clients.secrets import generate_client_secret
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthMethod, CibaClient, DeliveryMode


if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from django.contrib.auth.base_user import AbstractBaseUser
    from jwt.algorithms import AllowedPrivateKeys
    from oauth2_provider.models import AbstractApplication

    from django_ciba.backends.base import DeviceNotification
    from django_ciba.models import AuthenticationRequest

_Response_co = TypeVar("_Response_co", covariant=True)


class HttpClient(Protocol[_Response_co]):
    """What the helpers need of a test client: Django's (``django.test.Client``) or DRF's."""

    def post(self, path: str, *, data: Any = ..., content_type: str = ..., **extra: Any) -> _Response_co: ...


FORM = "application/x-www-form-urlencoded"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def create_ciba_client(
    name: str = "CIBA client",
    *,
    mode: str = DeliveryMode.POLL,
    notification_endpoint: str = "",
    auth_method: str = AuthMethod.CLIENT_SECRET_BASIC,
    scope: str = "",
    **ciba_fields: Any,
) -> tuple[AbstractApplication, str]:
    """Create a confidential Application with a CibaClient; return ``(application, client_secret)``."""
    Application = get_application_model()
    secret = generate_client_secret()
    application = Application.objects.create(
        name=name,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        algorithm="RS256" if oauth2_settings.OIDC_RSA_PRIVATE_KEY else "HS256",
        hash_client_secret=bool(oauth2_settings.OIDC_RSA_PRIVATE_KEY),
    )
    CibaClient.objects.create(
        application=application,
        delivery_mode=mode,
        notification_endpoint=notification_endpoint,
        token_endpoint_auth_method=auth_method,
        scope=scope,
        **ciba_fields,
    )
    return application, secret


def create_auth_request(
    client: AbstractApplication,
    user: AbstractBaseUser,
    *,
    scope: str = "openid",
    expires_in: int = 300,
    **fields: Any,
) -> AuthenticationRequest:
    """Store a pending poll-mode AuthenticationRequest directly (no bc-authorize, no delivery).

    For tests of what happens after a request exists (device pages, admin, decisions); ``fields``
    override any column. Its auth_req_id is random and not returned.
    """
    from datetime import timedelta

    from django.utils import timezone

    from django_ciba.core.identifiers import hash_auth_req_id, new_auth_req_id
    from django_ciba.models import AuthenticationRequest

    values = {
        "auth_req_id_hash": hash_auth_req_id(new_auth_req_id()),
        "client": client,
        "user": user,
        "delivery_mode": DeliveryMode.POLL,
        "hint_type": "login_hint",
        "scope": scope,
        "expires_at": timezone.now() + timedelta(seconds=expires_in),
        "interval": 5,
        **fields,
    }
    return AuthenticationRequest.objects.create(**values)


def basic_auth(client_id: str, secret: str) -> str:
    """An ``Authorization`` header value for client_secret_basic (RFC 6749 §2.3.1 encoding)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def bc_authorize(
    http_client: HttpClient[_Response_co],
    application: AbstractApplication,
    secret: str,
    path: str = "/o/bc-authorize",
    **params: Any,
) -> _Response_co:
    """POST a backchannel authentication request with client_secret_basic (Django test client)."""
    return http_client.post(
        path,
        data=urlencode(params),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def start_request(
    http_client: HttpClient[Any],
    application: AbstractApplication,
    secret: str,
    path: str = "/o/bc-authorize",
    **params: Any,
) -> tuple[str, AuthenticationRequest]:
    """Start a request through the real endpoint; return ``(auth_req_id, AuthenticationRequest)``.

    Fails with an AssertionError showing the error JSON when the OP refuses the request.
    """
    from django_ciba.models import AuthenticationRequest

    response = bc_authorize(http_client, application, secret, path=path, **params)
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    return auth_req_id, AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()


def poll(
    http_client: HttpClient[_Response_co],
    application: AbstractApplication,
    secret: str,
    auth_req_id: str,
    path: str = "/o/token/",
) -> _Response_co:
    """Poll the token endpoint with the CIBA grant (Django test client)."""
    return http_client.post(
        path,
        data=urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )


def make_client_key(
    alg: str = "PS256", kid: str | None = None
) -> tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, dict[str, Any]]:
    """A fresh signing key for a test client: ``(private_key, public_jwk)``.

    RSA (2048 bits) for ``RS*``/``PS*``, the matching NIST curve for ``ES*``. The public JWK carries
    ``kid`` (a random one when not given), ``use: sig`` and ``alg``.
    """
    import json
    import secrets

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    curves: dict[str, ec.EllipticCurve] = {
        "ES256": ec.SECP256R1(),
        "ES384": ec.SECP384R1(),
        "ES512": ec.SECP521R1(),
    }
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg in curves:
        private_key = ec.generate_private_key(curves[alg])
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    public.update({"kid": kid or secrets.token_urlsafe(8), "use": "sig", "alg": alg})
    return private_key, public


def sign_jwt(
    claims: dict[str, Any],
    private_key: AllowedPrivateKeys,
    *,
    alg: str = "PS256",
    kid: str | None = None,
    **headers: Any,
) -> str:
    """A compact JWS of ``claims`` (extra JOSE header members as keyword arguments)."""
    import jwt

    header = dict(headers)
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(claims, private_key, algorithm=alg, headers=header or None)


def _signed_claims(
    claims: dict[str, Any],
    private_key: AllowedPrivateKeys,
    *,
    lifetime: int,
    alg: str,
    kid: str | None,
    nbf: bool = False,
) -> str:
    """Sign ``claims`` after adding ``iat`` (and ``nbf`` if asked) now, ``exp`` now + ``lifetime`` and
    a random ``jti``; entries of ``claims`` win, and ``None`` removes one."""
    import secrets
    import time

    now = int(time.time())
    times = {"iat": now, "nbf": now} if nbf else {"iat": now}
    merged = {**times, "exp": now + lifetime, "jti": secrets.token_urlsafe(16), **claims}
    return sign_jwt({k: v for k, v in merged.items() if v is not None}, private_key, alg=alg, kid=kid)


def request_object(
    application: AbstractApplication,
    private_key: AllowedPrivateKeys,
    *,
    issuer: str,
    alg: str = "PS256",
    kid: str | None = None,
    lifetime: int = 300,
    **params: Any,
) -> str:
    """A signed authentication request (CIBA §7.1.1) from ``application`` carrying ``params``.

    ``aud`` is ``issuer``; ``iss`` the client_id; ``iat`` and ``nbf`` now; ``exp`` now + ``lifetime``;
    a random ``jti``. Any of them can be overridden (or removed with ``None``) through ``params``.
    """
    claims = {"iss": application.client_id, "aud": issuer, **params}
    return _signed_claims(claims, private_key, lifetime=lifetime, alg=alg, kid=kid, nbf=True)


def client_assertion(
    application: AbstractApplication,
    private_key: AllowedPrivateKeys,
    *,
    audience: str,
    alg: str = "PS256",
    kid: str | None = None,
    lifetime: int = 60,
    **claims: Any,
) -> dict[str, str]:
    """The form fields of ``private_key_jwt`` client authentication (RFC 7523 §2.2) for ``application``.

    ``iss`` and ``sub`` are the client_id, ``aud`` is ``audience``; ``iat`` now, ``exp`` now +
    ``lifetime``, a random ``jti``; ``claims`` override them (``None`` removes one).
    """
    body = {"iss": application.client_id, "sub": application.client_id, "aud": audience, **claims}
    return {
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": _signed_claims(body, private_key, lifetime=lifetime, alg=alg, kid=kid),
    }


class CibaSettingsOverride:
    """Overrides single ``CIBA`` keys; ``set(**keys)`` may be called several times.

    A setting that lives in a section may be given by its flat name (``set(OUTBOUND_READ_TIMEOUT=2)``)
    and is written at its place (``CIBA["OUTBOUND"]["READ_TIMEOUT"]``); a section given as a dict is
    merged into the current one.
    """

    def __init__(self) -> None:
        self._overrides: list[override_settings] = []

    def set(self, **keys: Any) -> None:
        from django.conf import settings

        from django_ciba.core.conf import LOCATIONS, SECTIONS

        merged = dict(getattr(settings, "CIBA", None) or {})
        for name, value in keys.items():
            if name in LOCATIONS:
                section, key = LOCATIONS[name]
                current = merged.get(section)
                merged[section] = {**(current if isinstance(current, dict) else {}), key: value}
                merged.pop(name, None)
            elif name in SECTIONS and isinstance(value, dict) and isinstance(merged.get(name), dict):
                merged[name] = {**merged[name], **value}
            else:
                merged[name] = value
        override = override_settings(CIBA=merged)
        override.enable()
        self._overrides.append(override)

    def undo(self) -> None:
        while self._overrides:
            self._overrides.pop().disable()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is optional
    pytest = None  # type: ignore[assignment]  # pytest is optional

if pytest is not None:

    @pytest.fixture
    def ciba_settings() -> Iterator[CibaSettingsOverride]:
        """Override single CIBA keys for one test: ``ciba_settings.set(INTERVAL=2)``."""
        override = CibaSettingsOverride()
        yield override
        override.undo()

    @pytest.fixture
    def ciba_notifications() -> Iterator[list[DeviceNotification]]:
        """The device notifications sent through the locmem backend during the test (reset around it).

        Needs ``CIBA["NOTIFICATION_BACKEND"]`` set to ``django_ciba.backends.locmem.LocmemBackend``.
        """
        from django_ciba.backends import locmem

        locmem.reset()
        yield locmem.outbox
        locmem.reset()
