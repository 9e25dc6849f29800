"""oauthlib ``RequestValidator`` mixin for CIBA, for ``OAUTH2_VALIDATOR_CLASS``.

Compose it in front of a host's own validator: ``class MyValidator(CibaValidatorMixin, MyValidator)``.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote_plus

from django.utils import timezone
from oauth2_provider.models import AbstractApplication, get_application_model
from oauth2_provider.oauth2_validators import OAuth2Validator as DOTOAuth2Validator

from django_ciba import audit, lifecycle
from django_ciba.clients import assertions as client_assertion
from django_ciba.clients import cache as client_cache
from django_ciba.clients import mtls
from django_ciba.clients.secrets import upgrade_client_secret_from_request
from django_ciba.core import hot_path
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.core.identifiers import hash_auth_req_id
from django_ciba.models import AuthenticationRequest, AuthMethod, CibaClient, DeliveryMode
from django_ciba.tokens import polling
from django_ciba.tokens import rules as grant_rules
from django_ciba.validators.authorization_details import AuthorizationDetailsValidatorMixin
from django_ciba.validators.id_tokens import IdTokenValidatorMixin, token_hash
from django_ciba.validators.sender_constraint import SenderConstraintValidatorMixin


__all__ = ["CibaValidatorMixin", "OAuth2Validator", "basic_client_id", "basic_credentials", "token_hash"]

if TYPE_CHECKING:
    from oauthlib.common import Request

    # For the type checker the mixin extends DOT's validator, whose methods it calls with super().
    _ValidatorBase = DOTOAuth2Validator
else:
    _ValidatorBase = object


# What validate_ciba_auth_req_id reads before it knows the request is approved (polling.py too).
POLL_FIELDS = ("id", "auth_req_id_hash", "client_id", "status", "expires_at", "interval")


def basic_credentials(request: Request) -> str | None:
    """The credentials of an ``Authorization: Basic`` header (still base64), or None."""
    header = (getattr(request, "headers", None) or {}).get("HTTP_AUTHORIZATION")
    scheme, _, credentials = (header or "").partition(" ")
    return credentials if scheme == "Basic" and credentials else None


def basic_client_id(credentials: str) -> str | None:
    """The client_id of Basic ``credentials`` (RFC 6749 §2.3.1: form-encoded), or None if unreadable."""
    try:
        decoded = base64.b64decode(credentials, validate=False).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, separator, _ = decoded.partition(":")
    return unquote_plus(client_id) if separator else None


class CibaValidatorMixin(
    IdTokenValidatorMixin, AuthorizationDetailsValidatorMixin, SenderConstraintValidatorMixin, _ValidatorBase
):
    def _prefetch_client(self, client_id: Any, request: Request) -> None:
        """Load the application with its CIBA registration joined, into ``request.client``.

        DOT reuses ``request.client`` after its own checks (the client_id matches, ``is_usable``),
        so one query loads the client instead of two; with the hot-path cache on, none
        (:mod:`django_ciba.clients.cache`: a row of this process, valid under the shared client
        version). An unknown client_id, or a client ID metadata document URL, is left to DOT's own
        lookup.
        """
        if getattr(request, "client", None) or not client_id or not isinstance(client_id, str):
            return
        if client_id.startswith("https://"):
            return
        hot = self._hot_reads(request)
        version = hot.get(hot_path.VERSION_KEY) if hot is not None else None
        application = client_cache.cached(client_id, version)
        if application is None:
            try:
                # A unique lookup: slicing instead of first() spares the ORDER BY.
                found = get_application_model().objects.select_related("ciba").filter(client_id=client_id)[:1]
                application = next(iter(found), None)
            except ValueError:  # e.g. a NUL byte that PostgreSQL refuses; DOT answers invalid_client
                application = None
            if hot is not None and application is not None:
                # Read before the row: a change committed meanwhile has replaced it (never cached stale).
                client_cache.store(client_id, version or hot_path.claim_client_version(), application)
        request.client = application

    def _hot_reads(self, request: Request) -> dict[str, Any] | None:
        """The hot-path cache's keys for this request, read in one round trip and kept on it: the
        client version and, for a CIBA poll, the request's pending entry and polling state. None
        when the hot-path cache is off or unavailable."""
        if not hasattr(request, "ciba_hot_reads"):
            reads = None
            if hot_path.enabled():
                keys = [hot_path.VERSION_KEY]
                auth_req_id = getattr(request, "auth_req_id", None)
                if getattr(request, "grant_type", None) == CIBA_GRANT_TYPE and isinstance(auth_req_id, str):
                    digest = hash_auth_req_id(auth_req_id)
                    keys += [hot_path.pending_key(digest), polling.key(digest)]
                reads = hot_path.get_many(keys)
            request.ciba_hot_reads = reads  # type: ignore[attr-defined]  # any attribute is accepted
        return cast("dict[str, Any] | None", request.ciba_hot_reads)

    def _load_client(self, client_id: str, request: Request) -> AbstractApplication | None:
        """The usable application ``client_id`` names (DOT's ``validate_client_id``), or None."""
        self._prefetch_client(client_id, request)
        if not self.validate_client_id(client_id, request):
            return None
        return cast("AbstractApplication | None", request.client)

    def validate_client_id(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        self._prefetch_client(client_id, request)
        return cast(bool, super().validate_client_id(client_id, request, *args, **kwargs))

    def authenticate_client_id(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        self._prefetch_client(client_id, request)
        client = getattr(request, "client", None)
        if client is not None and client.client_id == client_id and mtls.registered_method(client):
            return False  # RFC 8705 clients authenticate with their certificate, never as public
        return cast(bool, super().authenticate_client_id(client_id, request, *args, **kwargs))

    def is_confidential_client(self, application: AbstractApplication | None) -> bool:
        return getattr(application, "client_type", None) == AbstractApplication.CLIENT_CONFIDENTIAL

    def client_authentication_required(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        """A client presenting an assertion is always authenticated (never treated as public)."""
        if client_assertion.presented(request) or self._mtls_client(request) is not None:
            return True  # an RFC 8705 client is never public, whatever its application says
        return cast(bool, super().client_authentication_required(request, *args, **kwargs))

    def _mtls_client(self, request: Request) -> AbstractApplication | None:
        """The client the form's ``client_id`` names when it is registered for an RFC 8705 method."""
        client_id = getattr(request, "client_id", None)
        self._prefetch_client(client_id, request)
        client = getattr(request, "client", None)
        if client is None or client.client_id != client_id or mtls.registered_method(client) is None:
            return None
        return cast(AbstractApplication, client)

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        """DOT's client authentication, plus ``private_key_jwt`` and the CIBA client's registered
        method (REG-07), at the backchannel and token endpoints and for DOT's other grants.

        A request carrying ``client_assertion`` or ``client_assertion_type`` is checked as a
        ``private_key_jwt`` assertion only (:mod:`django_ciba.clients.assertions`); one whose form
        ``client_id`` names a client registered for ``tls_client_auth`` or
        ``self_signed_tls_client_auth`` by its TLS certificate only (:mod:`django_ciba.clients.mtls`,
        RFC 8705 §2). A CIBA client must
        use the method it registered, and only one method per request (RFC 6749 §2.3). After a
        successful secret check, a secret still stored with a slow password hasher is re-hashed
        with ``CLIENT_SECRET_HASHER`` (see :mod:`django_ciba.clients.secrets`).
        """
        if client_assertion.presented(request):
            return self._authenticate_client_assertion(request)
        mtls_client = self._mtls_client(request)
        if mtls_client is not None:  # RFC 8705 §2: clients/mtls.py
            other = bool(basic_credentials(request) or getattr(request, "client_secret", None))
            return self._load_client(mtls_client.client_id, request) is not None and mtls.authenticate(
                request, request.client, other_method=other
            )
        if not self._authenticate_ciba_client(request, *args, **kwargs):
            return False
        upgrade_client_secret_from_request(request)
        return True

    def _authenticate_client_assertion(self, request: Request) -> bool:
        """``private_key_jwt``: sets ``request.client`` and ``request.client_id`` on success."""
        other_method = bool(basic_credentials(request) or getattr(request, "client_secret", None))
        application = client_assertion.authenticate(request, self._load_client, other_method=other_method)
        request.client = application
        if application is None:
            return False
        request.client_id = application.client_id
        return True

    def _authenticate_ciba_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        basic = basic_credentials(request)
        if basic and not basic.isascii():
            return False  # DOT's base64 decoding raises on non-ASCII credentials (a 500)
        has_basic = bool(basic)
        self._prefetch_client(
            basic_client_id(basic) if basic else getattr(request, "client_id", None), request
        )
        # oauthlib answers request.encoding from a body parameter of that name, and DOT decodes the
        # Basic credentials with it (an unknown codec was a 500): they are UTF-8, whatever the body says.
        request.encoding = "utf-8"  # type: ignore[attr-defined]  # an instance attribute shadows the parameter
        try:
            if not super().authenticate_client(request, *args, **kwargs):
                return False
        finally:
            del request.encoding
        if grant_rules.secret_refused(request.client):
            return False  # FAPI-12: no client secrets under FAPI-CIBA
        # REG-07: the registered method holds whether the registration is enabled or not.
        ciba = CibaClient.objects.registration_of(request.client)
        if ciba is None:
            return True
        body_client_id = getattr(request, "client_id", None)
        # Ignored: request.client is set once the client is authenticated.
        if body_client_id and body_client_id != request.client.client_id:  # type: ignore[union-attr]
            return False  # credentials for one client, client_id of another
        has_post = bool(getattr(request, "client_secret", None))
        if has_basic and has_post:
            return False
        if not ciba.token_endpoint_auth_method:
            return True
        used = AuthMethod.CLIENT_SECRET_BASIC if has_basic else AuthMethod.CLIENT_SECRET_POST
        return used == ciba.token_endpoint_auth_method

    # Ignored override: oauthlib's stubs type ``client`` as its client-side Client, DOT passes an Application.
    def validate_grant_type(  # type: ignore[override]
        self,
        client_id: str,
        grant_type: str,
        client: AbstractApplication,
        request: Request,
        *a: Any,
        **kw: Any,
    ) -> bool:
        if grant_rules.is_disabled(request.client) or grant_rules.profile_refuses(request.client):
            return False  # a disabled registration, a push client under FAPI-CIBA: unauthorized_client
        ciba = CibaClient.objects.get_ciba_client(request.client)
        if grant_type == CIBA_GRANT_TYPE:
            # TOK-04: CIBA needs an enabled registration; TOK-05: push clients never poll.
            return ciba is not None and ciba.delivery_mode in (DeliveryMode.POLL, DeliveryMode.PING)
        if grant_type == "refresh_token" and ciba is not None:
            return True
        if grant_type == "client_credentials" and ciba is not None and ciba.ciba_only:
            return False
        return cast(bool, super().validate_grant_type(client_id, grant_type, client, request, *a, **kw))

    # Ignored override: oauthlib's stubs type ``client`` as its client-side Client, DOT passes an Application.
    def validate_response_type(  # type: ignore[override]
        self,
        client_id: str,
        response_type: str,
        client: AbstractApplication,
        request: Request,
        *a: Any,
        **kw: Any,
    ) -> bool:
        """DOT's check at the authorization endpoint; a disabled registration is refused there too."""
        if grant_rules.is_disabled(client):
            return False
        return cast(bool, super().validate_response_type(client_id, response_type, client, request, *a, **kw))

    # Ignored override: oauthlib's stubs type ``client`` as its client-side Client, DOT passes an Application.
    def validate_scopes(  # type: ignore[override]
        self,
        client_id: str,
        scopes: list[str],
        client: AbstractApplication,
        request: Request,
        *a: Any,
        **kw: Any,
    ) -> bool:
        """DOT's check, within the registered ``scope`` of a CIBA client (every grant that asks).

        oauthlib asks at the authorization endpoint (code, implicit), for client_credentials,
        password and the device code; :func:`~django_ciba.tokens.rules.check_registered_scopes`
        covers the grants that do not ask (refresh_token, the CIBA grant).
        """
        if not grant_rules.scopes_allowed(client, scopes):
            return False
        return cast(bool, super().validate_scopes(client_id, scopes, client, request, *a, **kw))

    def validate_bearer_token(self, token: str, scopes: list[str], request: Request) -> bool:
        """DOT's check; an access token of a client whose registration is disabled is invalid.

        Protected resources that validate through DOT (userinfo, ``ProtectedResourceView``, DRF's
        ``OAuth2Authentication``) then refuse it with ``invalid_token``, until it is enabled again.
        """
        if not super().validate_bearer_token(token, scopes, request):
            return False
        if grant_rules.is_disabled(getattr(request, "client", None)):
            request.oauth2_error = {  # type: ignore[attr-defined]  # oauthlib's Request takes any attribute
                "error": "invalid_token",
                "error_description": "The access token is invalid.",
            }
            return False
        return True

    def validate_ciba_auth_req_id(
        self, client: AbstractApplication, auth_req_id: str, request: Request
    ) -> str:
        """Classify a poll: ``approved``, ``authorization_pending``, ``slow_down``, ``expired_token``,
        ``access_denied``, ``cancelled`` (by the client) or ``invalid_grant``. On ``approved`` the
        request is prepared for minting (user, scopes, the CIBA request); :meth:`claim_ciba_request`
        then spends it."""
        now = timezone.now()
        pending = self._pending_from_cache(client, auth_req_id, request, now)
        if pending is not None:
            return pending
        requests = AuthenticationRequest.objects.by_auth_req_id(auth_req_id)
        # With the hot-path cache, a pending request is answered above: here it is most likely
        # decided, so the whole row and its user are read at once. Without it, pending polls
        # dominate: only the columns a poll decision needs, no join.
        whole = getattr(request, "ciba_hot_reads", None) is not None
        found = list((requests.select_related("user") if whole else requests.only(*POLL_FIELDS))[:1])
        auth = found[0] if found else None
        Status = AuthenticationRequest.Status
        # TOK-03: unknown, or issued to another client -> invalid_grant (indistinguishable).
        if auth is None or auth.client_id != client.pk:
            return "invalid_grant"
        if auth.status == Status.EXPIRED or (
            auth.status in (Status.PENDING, Status.APPROVED) and auth.is_expired(now)
        ):
            return "expired_token"  # TOK-09
        if auth.status == Status.DENIED:
            return "access_denied"  # TOK-10
        if auth.status == Status.CANCELLED:
            return "cancelled"  # invalid_grant, said so in its description
        if auth.status == Status.PENDING:
            if whole and auth.delivery_mode in lifecycle.POLLED:
                # Its entry had expired (or was lost): back in, unless a transition left its tombstone.
                hot_path.restore_pending(
                    auth.auth_req_id_hash,
                    client_pk=auth.client_id,
                    expires_at=auth.expires_at,
                    interval=auth.interval,
                )
            return "slow_down" if polling.register_poll(auth, now) else "authorization_pending"
        if auth.status != Status.APPROVED:
            return "invalid_grant"  # TOK-12: spent (or failed)
        if not whole:
            auth = AuthenticationRequest.objects.select_related("user").get(pk=auth.pk)  # the whole row
        auth.client = client  # already loaded (the tokens_issued signal names the client)
        if not auth.user.is_active:
            return "access_denied"
        request.user = auth.user
        request.scopes = auth.granted_scopes
        # oauthlib's Request takes any attribute; its stubs only declare the OAuth parameters.
        request.ciba_request = auth  # type: ignore[attr-defined]
        request.ciba_auth_req_id = auth_req_id  # type: ignore[attr-defined]
        return "approved"

    def _pending_from_cache(
        self, client: AbstractApplication, auth_req_id: str, request: Request, now: datetime
    ) -> str | None:
        """``authorization_pending`` or ``slow_down`` from the request's pending entry, when it is
        pending for this client and not expired; None (read the database) otherwise (TOK-07)."""
        hot = getattr(request, "ciba_hot_reads", None)
        if not hot:
            return None
        digest = hash_auth_req_id(auth_req_id)
        entry = hot_path.entry_from(hot.get(hot_path.pending_key(digest)))
        if entry is None or entry.client_pk != client.pk or now.timestamp() >= entry.expires_at:
            return None
        slow = polling.register(
            digest,
            interval=entry.interval,
            seconds_left=entry.seconds_left(now),
            now=now,
            state=hot.get(polling.key(digest)),
        )
        return "slow_down" if slow else "authorization_pending"

    def claim_ciba_request(self, request: Request) -> bool:
        """Spend the approved request atomically; False when another poll got there first.

        This is the ``tokens issued`` transition (:func:`django_ciba.lifecycle.issue_tokens`), made
        in the grant's transaction: rolled back, audit row included, if minting then fails.
        """
        auth: AuthenticationRequest = request.ciba_request  # type: ignore[assignment]  # set on approval
        return lifecycle.issue_tokens(auth, now=timezone.now(), actor=audit.client_actor(request.client))


class OAuth2Validator(CibaValidatorMixin, DOTOAuth2Validator):
    """DOT's validator with :class:`CibaValidatorMixin`."""
