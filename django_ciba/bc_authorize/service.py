"""The backchannel authentication request: validation in the order of CIBA Core §7.2, then storage.

:func:`start_authentication` is what the ``/bc-authorize`` view calls after parsing the form. It
raises :class:`~django_ciba.exceptions.CibaError` subclasses for every refusal and creates no
auth_req_id unless every check passed (VAL-09).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.scopes import get_scopes_backend

from django_ciba import audit, lifecycle, policies
from django_ciba.bc_authorize import abuse, prompt_limits, timing
from django_ciba.bc_authorize.authorization_details import requested_details
from django_ciba.bc_authorize.binding import requested_binding
from django_ciba.bc_authorize.params import (
    check_binding_message,
    check_client_notification_token,
    parse_requested_expiry,
    parse_scope,
)
from django_ciba.bc_authorize.request_object import unpack_signed_request
from django_ciba.core.conf import ciba_settings
from django_ciba.core.constants import HINT_PARAMETERS
from django_ciba.core.identifiers import hash_auth_req_id, new_auth_req_id
from django_ciba.core.sealing import seal
from django_ciba.exceptions import InvalidRequest, InvalidScope, UnknownUserId
from django_ciba.models import AuthenticationRequest, CibaClient, DeliveryMode
from django_ciba.resolvers import resolve_user


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Acknowledgement:
    """The successful answer (§7.3). ``auth_req_id`` exists only here, never in the database."""

    auth_req_id: str
    expires_in: int
    interval: int | None
    auth_request: AuthenticationRequest

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"auth_req_id": self.auth_req_id, "expires_in": self.expires_in}
        if self.interval is not None:
            body["interval"] = self.interval
        return body


def _single_hint(form: dict[str, Any]) -> tuple[str, str]:
    """BC-07: exactly one of login_hint_token, id_token_hint, login_hint."""
    present = [name for name in HINT_PARAMETERS if name in form]
    if len(present) != 1:
        raise InvalidRequest(
            "Exactly one of login_hint_token, id_token_hint and login_hint is required."
            if not present
            else "Only one hint may be sent."
        )
    return present[0], form[present[0]]


def _check_scopes(scopes: list[str], application: Any, ciba: CibaClient, oauthlib_request: Any) -> None:
    """AERR-02: every scope must be offered by DOT's scopes backend and allowed for this client."""
    available = set(
        get_scopes_backend().get_available_scopes(application=application, request=oauthlib_request)
    )
    if ciba.allowed_scopes is not None:
        available &= ciba.allowed_scopes
    unknown = [scope for scope in scopes if scope not in available]
    if unknown:
        raise InvalidScope("Unknown or unauthorized scope requested.")


def _expires_in(requested: int | None, ciba: CibaClient) -> int:
    """BC-11: ``requested_expiry``, capped by the client's own limit (``max_requested_expiry``, for
    clients such as agents whose users may answer hours later), else by ``MAX_EXPIRES_IN``."""
    cap = ciba.max_requested_expiry or int(ciba_settings.MAX_EXPIRES_IN)
    return max(1, min(requested or int(ciba_settings.DEFAULT_EXPIRES_IN), cap))


def start_authentication(
    application: Any, ciba: CibaClient, form: dict[str, Any], *, request: Any, oauthlib_request: Any
) -> Acknowledgement:
    """Validate a backchannel authentication request from an authenticated client and store it."""
    # VAL-02: a signed request is verified before anything else; its claims replace the form.
    form = unpack_signed_request(form, application=application, ciba=ciba, request=request)
    scopes = parse_scope(form.get("scope"))
    hint_type, hint = _single_hint(form)
    binding_message = check_binding_message(form.get("binding_message"))
    requested_expiry = parse_requested_expiry(form.get("requested_expiry"))
    needs_token = ciba.delivery_mode in (DeliveryMode.PING, DeliveryMode.PUSH)
    notification_token = check_client_notification_token(form.get("client_notification_token"), needs_token)
    binding_jkt, binding_x5t = requested_binding(form, ciba, oauthlib_request)
    acr_values = form.get("acr_values", "")
    if len(acr_values) > 255:
        raise InvalidRequest("acr_values is too long.")
    _check_scopes(scopes, application, ciba, oauthlib_request)
    details = requested_details(form, ciba)  # RFC 9396 §3, §5
    abuse.check_client(application, ciba=ciba, request=request)  # SEC-07: before any user lookup
    started = timing.start()
    try:
        user = resolve_user(hint_type, hint, client=application, request=request)  # VAL-04
        state = abuse.check_user(application, user, request=request)
    except UnknownUserId:
        timing.pad_unknown(started)  # SEC-08: as slow as a known user's request, on average
        raise
    abuse.check_user_code(ciba, user, form.get("user_code"), application=application)
    decision = policies.decide(application=application, ciba=ciba, user=user, scopes=scopes, request=request)

    now = timezone.now()
    expires_in = _expires_in(requested_expiry, ciba)
    interval = int(ciba_settings.INTERVAL)
    auth_req_id = new_auth_req_id()
    callbacks = ciba.delivery_mode in (DeliveryMode.PING, DeliveryMode.PUSH)
    ask_user = decision.outcome == policies.ASK
    with transaction.atomic():
        auth_request = lifecycle.create(
            actor=audit.client_actor(application),
            auth_req_id_hash=hash_auth_req_id(auth_req_id),
            client=application,
            user=user,
            delivery_mode=ciba.delivery_mode,
            hint_type=hint_type,
            scope=" ".join(scopes),
            acr_values=" ".join(acr_values.split()),
            binding_message=binding_message,
            requested_expiry=requested_expiry,
            expires_at=now + timedelta(seconds=expires_in),
            interval=interval,
            asked_user=ask_user,
            # Callbacks need both values in clear later; they are stored sealed, never as such.
            auth_req_id_sealed=seal(auth_req_id) if callbacks else "",
            client_notification_token_sealed=seal(notification_token) if notification_token else "",
            binding_jkt=binding_jkt,
            binding_x5t=binding_x5t,
            authorization_details=details,
            created_at=now,
            updated_at=now,
        )
        if ask_user:
            # SEC-07: this client's oldest requests still waiting for the user give way to this one.
            prompt_limits.supersede_older(auth_request, now=now, waiting=state.pair_pending)
            # AD-01: the authentication device is notified by a worker, after this commits.
            lifecycle.notify_device(auth_request)
        else:
            policies.apply(decision, auth_request)
    timing.record_known(started)
    return Acknowledgement(
        auth_req_id=auth_req_id,
        expires_in=expires_in,
        interval=None if ciba.delivery_mode == DeliveryMode.PUSH else interval,
        auth_request=auth_request,
    )


def acknowledge(auth_request: AuthenticationRequest) -> None:
    """The answer announcing ``auth_request`` was sent: release the client callbacks waiting for it.

    Called by the view once the response has been written (ordering: no ping or push may reach
    the client before it knows its auth_req_id). Poll requests have no callbacks and skip this.
    """
    if auth_request.delivery_mode == DeliveryMode.POLL:
        return
    try:
        lifecycle.acknowledge(auth_request, now=timezone.now())
    except Exception:  # the response is already sent; the callbacks go after the grace period
        logger.exception("Could not record the acknowledgement of request #%s.", auth_request.pk)
