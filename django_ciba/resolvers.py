"""User resolution from hints (VAL-04), configured like ``AUTHENTICATION_BACKENDS``.

``CIBA["USER_RESOLVERS"]`` is an ordered list of classes. For the hint the client sent, every
resolver that handles that hint type is asked in turn; the first one returning a user wins. A
resolver returns ``None`` when it does not know the user and raises a
:class:`~django_ciba.exceptions.CibaError` when the hint itself is bad (malformed, badly signed,
expired). Inactive users are never returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from django.contrib.auth import get_user_model
from django.utils.module_loading import import_string
from oauth2_provider.settings import oauth2_settings

from django_ciba.clients.subjects import user_by_public_subject, user_for_subject
from django_ciba.core.conf import ciba_settings
from django_ciba.core.id_token_keys import signing_keys
from django_ciba.exceptions import (
    CibaConfigurationError,
    ExpiredLoginHintToken,
    InvalidRequest,
    UnknownUserId,
)


if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.db.models import QuerySet
    from django.http import HttpRequest
    from oauth2_provider.models import AbstractApplication


class BaseUserResolver:
    """Resolve one kind of hint to an active user. Subclasses set :attr:`hint_type`."""

    #: ``login_hint``, ``id_token_hint`` or ``login_hint_token``.
    hint_type: str = ""

    def resolve(
        self, hint: str, *, client: AbstractApplication, request: HttpRequest | None = None
    ) -> AbstractBaseUser | None:
        raise NotImplementedError(f"{type(self).__name__} must implement resolve()")

    def active_users(self) -> QuerySet[AbstractBaseUser]:
        return get_user_model()._default_manager.filter(is_active=True)

    def user_by_subject(self, subject: object) -> AbstractBaseUser | None:
        """The user a public ``sub`` names (DOT's default ``sub`` is the primary key)."""
        return user_by_public_subject(subject, self.active_users())


class LoginHintResolver(BaseUserResolver):
    """``login_hint`` matches the username exactly, then the e-mail address case-insensitively."""

    hint_type = "login_hint"

    def resolve(
        self, hint: str, *, client: AbstractApplication, request: HttpRequest | None = None
    ) -> AbstractBaseUser | None:
        User = get_user_model()
        users = self.active_users()
        # USERNAME_FIELD is unique: a slice, not first(), spares the ORDER BY.
        user = next(iter(users.filter(**{User.USERNAME_FIELD: hint})[:1]), None)
        if user is not None:
            return user
        email_field = User.get_email_field_name()
        matches = list(users.filter(**{f"{email_field}__iexact": hint})[:2])
        return matches[0] if len(matches) == 1 else None


@lru_cache(maxsize=16)
def _public_key_from_private_pem(pem: str) -> PublicKeyTypes:
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None).public_key()


def op_signing_keys() -> list[PublicKeyTypes]:
    """Public keys of DOT's OIDC signing keys, active first, then the inactive ones."""
    pems = [oauth2_settings.OIDC_RSA_PRIVATE_KEY, *(oauth2_settings.OIDC_RSA_PRIVATE_KEYS_INACTIVE or [])]
    return [_public_key_from_private_pem(pem) for pem in pems if pem]


def id_token_keys() -> list[tuple[str, PublicKeyTypes]]:
    """``(alg, public key)`` of every key the OP signs ID tokens with: DOT's (RS256), then those of
    ``CIBA["ID_TOKEN_SIGNING_KEYS"]`` (IDT-06), retired ones included (the published JWKS)."""
    keys: list[tuple[str, PublicKeyTypes]] = [("RS256", key) for key in op_signing_keys()]
    keys.extend((key.alg, key.private_key.public_key()) for key in signing_keys())
    return keys


def _decode_with_any_key(
    token: str, keys: Sequence[Any], algorithms: list[str], **options: Any
) -> dict[str, Any]:
    """Verify ``token`` against each key; the first that verifies wins."""
    last_error: Exception = jwt.InvalidSignatureError("No key verifies the signature.")
    for key in keys:
        try:
            return jwt.decode(token, key=key, algorithms=algorithms, **options)
        except jwt.InvalidSignatureError as exc:
            last_error = exc
        except jwt.InvalidKeyError as exc:  # key type does not fit the algorithm
            last_error = exc
        except TypeError as exc:  # PyJWT raises TypeError for e.g. an EC key with an RS* token
            last_error = jwt.InvalidKeyError(str(exc))
    raise last_error


class IdTokenHintResolver(BaseUserResolver):
    """``id_token_hint``: an ID token this OP issued to the same client (BC-12, SEC-04).

    The signature is checked against the keys the OP signs ID tokens with: DOT's OIDC keys, including
    inactive ones (key rotation), and ``CIBA["ID_TOKEN_SIGNING_KEYS"]`` (PS256, ES256; each key only
    with its own algorithm), the issuer must be this OP and ``aud`` must contain the presenting
    client. Expired ID tokens are accepted, as CIBA allows, since a hint only names the user. The
    ``sub`` is read as the presenting client's subject: for a pairwise client only a subject of its
    own sector names a user (PRIV-01), so neither a pk nor another sector's subject resolves.
    """

    hint_type = "id_token_hint"

    def resolve(
        self, hint: str, *, client: AbstractApplication, request: HttpRequest | None = None
    ) -> AbstractBaseUser | None:
        keys = id_token_keys()
        if not keys:
            raise InvalidRequest("This OP does not accept id_token_hint.")
        try:
            alg = jwt.get_unverified_header(hint).get("alg")
            claims = _decode_with_any_key(
                hint,
                [key for key_alg, key in keys if key_alg == alg],
                algorithms=[alg] if isinstance(alg, str) else [],
                audience=client.client_id,
                issuer=oauth2_settings.oidc_issuer(request),
                options={"verify_exp": False, "require": ["iss", "aud", "sub"]},
                leeway=int(ciba_settings.JWT_LEEWAY),
            )
        except jwt.PyJWTError:
            raise InvalidRequest("The id_token_hint is not a valid ID token issued to this client.")
        return user_for_subject(claims.get("sub"), client, users=self.active_users())


def login_hint_token_keys() -> list[Any]:
    """The keys configured in ``CIBA["LOGIN_HINT_TOKEN"]["KEYS"]`` as PyJWT key objects."""
    source = ciba_settings.LOGIN_HINT_TOKEN_KEYS
    if isinstance(source, str):
        source = import_string(source)()
    keys = []
    for item in source or []:
        try:
            if isinstance(item, dict):
                keys.append(jwt.PyJWK(item).key)
            elif isinstance(item, str):
                keys.append(serialization.load_pem_public_key(item.encode("ascii")))
            else:
                keys.append(item)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise CibaConfigurationError(f"CIBA['LOGIN_HINT_TOKEN']['KEYS'] holds an unusable key: {exc}")
    return keys


class LoginHintTokenResolver(BaseUserResolver):
    """``login_hint_token`` as a signed JWT from a trusted issuer (BC-13, SEC-03).

    Verified against ``LOGIN_HINT_TOKEN_KEYS`` (and ``LOGIN_HINT_TOKEN_ISSUERS`` when set); ``exp``
    is required and an expired token is ``expired_login_hint_token``. The user is named by the
    first of these claims present: ``sub`` (the OP's subject), ``email``, ``username``.
    """

    hint_type = "login_hint_token"

    def resolve(
        self, hint: str, *, client: AbstractApplication, request: HttpRequest | None = None
    ) -> AbstractBaseUser | None:
        keys = login_hint_token_keys()
        if not keys:
            raise InvalidRequest("This OP does not accept login_hint_token.")
        issuers = list(ciba_settings.LOGIN_HINT_TOKEN_ISSUERS or [])
        try:
            claims = _decode_with_any_key(
                hint,
                keys,
                algorithms=list(ciba_settings.LOGIN_HINT_TOKEN_ALGORITHMS),
                issuer=issuers or None,
                options={"require": ["exp"], "verify_aud": False},
                leeway=int(ciba_settings.JWT_LEEWAY),
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredLoginHintToken("The login_hint_token has expired.")
        except jwt.PyJWTError:
            raise InvalidRequest("The login_hint_token is not valid.")
        return self.user_from_claims(claims)

    def user_from_claims(self, claims: dict[str, Any]) -> AbstractBaseUser | None:
        if "sub" in claims:
            return self.user_by_subject(claims["sub"])
        User = get_user_model()
        if isinstance(claims.get("email"), str):
            matches = list(
                self.active_users().filter(**{f"{User.get_email_field_name()}__iexact": claims["email"]})[:2]
            )
            return matches[0] if len(matches) == 1 else None
        if isinstance(claims.get("username"), str):
            return self.active_users().filter(**{User.USERNAME_FIELD: claims["username"]}).first()
        return None


def get_resolvers() -> list[BaseUserResolver]:
    classes = ciba_settings.USER_RESOLVERS
    if not classes:
        raise CibaConfigurationError("CIBA['USER_RESOLVERS'] must name at least one resolver.")
    return [cls() for cls in classes]


def resolve_user(
    hint_type: str, hint: str, *, client: AbstractApplication, request: HttpRequest | None = None
) -> AbstractBaseUser:
    """Ask each resolver for ``hint_type`` in order; ``unknown_user_id`` when none knows the user."""
    handlers = [resolver for resolver in get_resolvers() if resolver.hint_type == hint_type]
    if not handlers:
        raise InvalidRequest(f"This OP does not accept {hint_type}.")
    for resolver in handlers:
        user = resolver.resolve(hint, client=client, request=request)
        if user is not None and getattr(user, "is_active", True):
            return user
    raise UnknownUserId()


__all__ = [
    "BaseUserResolver",
    "IdTokenHintResolver",
    "LoginHintResolver",
    "LoginHintTokenResolver",
    "resolve_user",
]
