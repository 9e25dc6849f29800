"""How strongly the user authenticated when approving: ``acr``, ``amr`` and ``auth_time`` (IDT-04).

The browser never chooses these. ``CIBA["AUTHENTICATION_CONTEXT"]`` names a hook,
``hook(request, user) -> AuthenticationContext``, that reports what the server knows about the
session approving a request: its RFC 8176 ``amr`` values and when it authenticated. The ``acr`` is
derived here from those ``amr`` values with ``CIBA["ACR_REQUIREMENTS"]`` and checked against the
request's ``acr_values`` and ``CIBA["ACR_VALUES_SUPPORTED"]`` (:func:`settle`); a session that
cannot satisfy the requested values cannot approve (:class:`~django_ciba.exceptions.InsufficientAssurance`).

Two hooks ship: :func:`session_context` (Django's login: ``pwd``, and the login time recorded in
the session by :func:`record_login`) and :func:`otp_session_context` (adds the second factor
django-otp verified, without importing django-otp). An approval nobody authenticated for (a
decision policy, an operator) carries :data:`NO_AUTHENTICATION`: no ``acr``, ``amr`` or
``auth_time``.

The assurance of an approval that issued a refresh token is kept per DOT refresh-token family
(:func:`remember_for_refresh`), so the ID tokens of the refresh grant repeat it (OpenID Connect
Core 12.2) instead of DOT's ``last_login``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.db.models import Exists, OuterRef
from django.utils import timezone
from oauth2_provider.models import get_refresh_token_model

from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaConfigurationError, InsufficientAssurance
from django_ciba.models import TokenAssurance


#: Session key holding when the session's user signed in (seconds since the epoch).
SESSION_AUTH_TIME_KEY = "django_ciba.auth_time"

#: RFC 8176 methods of django-otp device classes (by class name); any other device is "otp".
OTP_DEVICE_METHODS: dict[str, tuple[str, ...]] = {
    "YubikeyDevice": ("otp", "hwk"),
    "RemoteYubikeyDevice": ("otp", "hwk"),
    "WebAuthnDevice": ("hwk",),
    "PhoneDevice": ("sms",),
    "SMSDevice": ("sms",),
    "TwilioSMSDevice": ("sms",),
}

# Token-family rows are kept at least this long, even when their family has no refresh token yet.
ORPHAN_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class AuthenticationContext:
    """What the server knows about how a session authenticated (returned by the hook).

    ``amr``: RFC 8176 authentication method references (``pwd``, ``otp``, ``hwk``, ``mfa``...);
    ``auth_time``: when the user authenticated (aware datetime), or None when unknown.
    """

    amr: tuple[str, ...] = ()
    auth_time: datetime | None = None


@dataclass(frozen=True)
class Assurance:
    """What an approval records and its ID tokens claim (empty: nobody authenticated)."""

    acr: str = ""
    amr: tuple[str, ...] = ()
    auth_time: datetime | None = None


NO_AUTHENTICATION = Assurance()


def record_login(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """``user_logged_in`` receiver: note in the session when its user signed in."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_AUTH_TIME_KEY] = int(timezone.now().timestamp())


def session_auth_time(request: Any) -> datetime | None:
    """When the session's user signed in, as recorded by :func:`record_login`; None if unknown
    (a session opened before django-ciba recorded it)."""
    session = getattr(request, "session", None)
    value = session.get(SESSION_AUTH_TIME_KEY) if session is not None else None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def session_context(request: Any, user: Any) -> AuthenticationContext:
    """The default hook: Django's login, i.e. a password (``pwd``), at the session's login time."""
    return AuthenticationContext(amr=("pwd",), auth_time=session_auth_time(request))


def otp_session_context(request: Any, user: Any) -> AuthenticationContext:
    """Django's login plus the second factor django-otp verified for this session.

    Reads what django-otp's ``OTPMiddleware`` puts on the user (``is_verified()``, ``otp_device``),
    so django-otp is not imported. A verified session adds the device's methods
    (:data:`OTP_DEVICE_METHODS`, ``otp`` by default) and ``mfa``.
    """
    base = session_context(request, user)
    is_verified = getattr(user, "is_verified", None)
    if not callable(is_verified) or not is_verified():
        return base
    device = getattr(user, "otp_device", None)
    methods = OTP_DEVICE_METHODS.get(type(device).__name__, ("otp",)) if device is not None else ("otp",)
    return AuthenticationContext(amr=_unique([*base.amr, *methods, "mfa"]), auth_time=base.auth_time)


def context_for(request: Any, user: Any) -> AuthenticationContext:
    """Ask ``CIBA["AUTHENTICATION_CONTEXT"]`` how ``request``'s session authenticated."""
    hook: Callable[[Any, Any], Any] = ciba_settings.AUTHENTICATION_CONTEXT
    context = hook(request, user)
    if not isinstance(context, AuthenticationContext):
        raise CibaConfigurationError(
            "CIBA['AUTHENTICATION_CONTEXT'] must return an AuthenticationContext, "
            f"not {type(context).__name__}."
        )
    return context


def satisfied_acr_values(amr: Iterable[str]) -> list[str]:
    """The ``acr`` values of ``ACR_REQUIREMENTS`` whose ``amr`` values are all in ``amr`` (and that
    ``ACR_VALUES_SUPPORTED`` lists, when it lists any), in the order of ``ACR_REQUIREMENTS``."""
    have = set(amr)
    supported = list(ciba_settings.ACR_VALUES_SUPPORTED or [])
    requirements: dict[str, Any] = ciba_settings.ACR_REQUIREMENTS or {}
    return [
        acr
        for acr, needed in requirements.items()
        if set(needed) <= have and (not supported or acr in supported)
    ]


def settle(acr_values: str, context: AuthenticationContext | None) -> Assurance:
    """The assurance an approval with ``context`` records for a request asking ``acr_values``.

    ``acr`` is the first requested value (the client's preference order) the session satisfies;
    without ``acr_values``, the last satisfied value of ``ACR_REQUIREMENTS`` (which lists them
    from weakest to strongest), or ``""`` when none is satisfied. Raises
    :class:`~django_ciba.exceptions.InsufficientAssurance` when ``acr_values`` were requested and
    none is satisfied. ``context`` None (nobody authenticated) gives :data:`NO_AUTHENTICATION`.
    """
    if context is None:
        return NO_AUTHENTICATION
    satisfied = satisfied_acr_values(context.amr)
    requested = acr_values.split()
    if requested:
        matching = [value for value in requested if value in satisfied]
        if not matching:
            raise InsufficientAssurance()
        acr = matching[0]
    else:
        acr = satisfied[-1] if satisfied else ""  # ACR_REQUIREMENTS lists weakest to strongest
    return Assurance(acr=acr, amr=_unique(context.amr), auth_time=context.auth_time)


def remember_for_refresh(auth_request: Any, token: dict[str, Any]) -> None:
    """Keep the approval's assurance for the refresh-token family just issued with ``token``."""
    raw = token.get("refresh_token")
    if not raw:
        return
    checksum = hashlib.sha256(str(raw).encode("utf-8")).hexdigest()
    family = (
        get_refresh_token_model()
        .objects.filter(token_checksum=checksum)
        .values_list("token_family", flat=True)
        .first()
    )
    if family is None:
        return
    # DOT starts a new family (a random UUID) for every token response of a grant other than
    # refresh_token, so this family has no row yet: one INSERT, no get_or_create savepoint.
    TokenAssurance.objects.create(
        token_family=family,
        auth_request=auth_request,
        acr=auth_request.acr,
        amr=list(auth_request.amr or []),
        auth_time=auth_request.auth_time,
        authorization_details=auth_request.granted_details,  # RFC 9396 §6
    )


def for_refresh(request: Any) -> TokenAssurance | None:
    """The kept assurance of the refresh token presented to DOT's refresh grant, if any (read once
    per request: the ID token and the authorization details both ask)."""
    instance = getattr(request, "refresh_token_instance", None)
    family = getattr(instance, "token_family", None)
    if family is None:
        return None
    cached = getattr(request, "ciba_kept_assurance", None)
    if cached is not None and cached[0] == family:
        return cast("TokenAssurance | None", cached[1])
    kept = TokenAssurance.objects.filter(token_family=family).first()
    request.ciba_kept_assurance = (family, kept)
    return kept


def add_claims(claims: dict[str, Any], *, acr: str, amr: Iterable[str], auth_time: datetime | None) -> None:
    """Put the approval's ``acr``, ``amr`` and ``auth_time`` into ID-token ``claims``.

    Without an ``auth_time`` (nobody authenticated, or unknown) DOT's guess (``last_login``) is
    removed rather than claimed.
    """
    if auth_time is not None:
        claims["auth_time"] = int(auth_time.timestamp())
    else:
        claims.pop("auth_time", None)
    if acr:
        claims["acr"] = acr
    amr_list = list(amr or [])
    if amr_list:
        claims["amr"] = amr_list


def purge_orphans(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Delete kept assurances whose refresh-token family has no refresh token left."""
    cutoff = (now or timezone.now()) - ORPHAN_GRACE
    family_exists = Exists(get_refresh_token_model().objects.filter(token_family=OuterRef("token_family")))
    deleted = 0
    while True:
        pks = list(
            TokenAssurance.objects.filter(~family_exists, created_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if pks:
            deleted += TokenAssurance.objects.filter(pk__in=pks).delete()[0]
        if len(pks) < batch_size:
            return deleted


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(value) for value in values))
