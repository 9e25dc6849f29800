"""Decision policies consulted at bc-authorize: ask the user, approve now, or deny now.

:func:`decide` is called by :func:`django_ciba.bc_authorize.service.start_authentication` once the client is
authenticated, the request validated and the user resolved, before anything is stored. It asks the
policies of ``CIBA["DECISION_POLICIES"]`` in order; the first one that does not answer "ask the
user" decides. :func:`apply` then carries out an immediate decision on the freshly stored request,
inside the transaction that stores it.

Whatever the decision, the client gets the standard asynchronous answer (``auth_req_id``,
``expires_in``, ``interval``): an approval is collected by the first poll, or announced by a ping
or a push sent only after that answer (the outbox holds client callbacks until the view has written
the answer out). A denial is answered the same way (``access_denied`` at the token endpoint, or an
``access_denied`` error push), so client code has a single shape to handle. See docs/policies.rst.

A policy that raises (anything but a deliberate protocol error) or returns something unusable is
logged and the request goes to the user: a broken policy may cost the user a tap, never approve or
refuse on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.db import connections, router
from django.utils import timezone

from django_ciba.approval import decisions
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import CibaError
from django_ciba.models import PreAuthorization


if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest
    from oauth2_provider.models import AbstractApplication

    from django_ciba.models import AuthenticationRequest, CibaClient


logger = logging.getLogger(__name__)

ASK = "ask"
APPROVE = "approve"
DENY = "deny"
OUTCOMES = (ASK, APPROVE, DENY)


@dataclass(frozen=True)
class Decision:
    """What a policy decided; ``actor`` names it in the audit trail (``policy:<name>``).

    ``scopes`` (approvals only) is what is granted: ``None`` grants every requested scope, a list
    grants that subset (it must keep ``openid``). ``detail`` is free-form, for logs; it must hold
    no secret.
    """

    outcome: str = ASK
    actor: str = ""
    scopes: list[str] | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class DecisionPolicy:
    """Base class of decision policies (``CIBA["DECISION_POLICIES"]`` lists their import paths).

    Subclass it and override :meth:`decide`. A policy is instantiated for each ``bc-authorize``
    request, so it may keep per-request state but should not expect to be reused. ``name`` is used
    in the audit actor (``policy:<name>``) of decisions that do not name their own actor.
    """

    #: Audit name; defaults to the dotted path of the class.
    name: str = ""

    def get_name(self) -> str:
        return self.name or _dotted(type(self))

    def decide(
        self,
        *,
        application: AbstractApplication,
        ciba: CibaClient,
        user: AbstractBaseUser,
        scopes: list[str],
        request: HttpRequest | None = None,
    ) -> Decision:
        """Decide on a validated backchannel authentication request, before it is stored.

        ``application`` is the authenticated client (DOT Application) and ``ciba`` its
        :class:`~django_ciba.models.CibaClient`; ``user`` is the resolved (active) user the request
        names; ``scopes`` the requested scopes (validated, ``openid`` among them); ``request`` the
        Django ``HttpRequest`` of ``/bc-authorize``. Return :meth:`ask` to leave the request to the
        user (or to the next policy), :meth:`approve` or :meth:`deny` to decide now.

        Runs inside the ``bc-authorize`` request: keep it quick (a query or two, no remote calls
        without a short timeout). Raising is treated as "ask the user" and logged, except for a
        :class:`~django_ciba.exceptions.CibaError` (e.g. ``AccessDenied``), which is answered at
        once as a protocol error and creates no request.
        """
        return self.ask()

    # Helpers for subclasses -----------------------------------------------------------------

    def ask(self, **detail: Any) -> Decision:
        return Decision(ASK, actor=self.actor(), detail=detail)

    def approve(self, scopes: Iterable[str] | None = None, *, actor: str = "", **detail: Any) -> Decision:
        """Approve now, granting ``scopes`` (default: every requested scope)."""
        granted = list(scopes) if scopes is not None else None
        return Decision(APPROVE, actor=actor or self.actor(), scopes=granted, detail=detail)

    def deny(self, *, actor: str = "", **detail: Any) -> Decision:
        """Deny now; the client learns it like a user's denial (``access_denied``)."""
        return Decision(DENY, actor=actor or self.actor(), detail=detail)

    def actor(self) -> str:
        return f"policy:{self.get_name()}"


class PreAuthorizationPolicy(DecisionPolicy):
    """Approve what an operator pre-authorized (:class:`~django_ciba.models.PreAuthorization`).

    A request is approved when one enabled, unexpired pre-authorization for this client, naming
    this user or every user, lists every requested scope (``openid`` included). A user-specific
    one is preferred over one for every user, then the oldest. Anything else is left to the user.
    The audit actor is ``policy:pre-authorization#<pk>``.
    """

    name = "pre-authorization"

    def decide(
        self,
        *,
        application: AbstractApplication,
        ciba: CibaClient,
        user: AbstractBaseUser,
        scopes: list[str],
        request: HttpRequest | None = None,
    ) -> Decision:
        grant = self.find(application=application, user=user, scopes=scopes)
        if grant is None:
            return self.ask()
        return self.approve(actor=f"policy:{self.name}#{grant.pk}", pre_authorization=grant.pk)

    @staticmethod
    def find(
        *,
        application: AbstractApplication,
        user: AbstractBaseUser,
        scopes: Iterable[str],
        now: datetime | None = None,
    ) -> PreAuthorization | None:
        """The pre-authorization covering ``scopes`` for ``application`` and ``user``, if any.

        One query (on the client foreign key's index); the scope comparison is done here, since a
        scope list is a space-separated text. It runs on every bc-authorize, so its SQL is written
        once (:func:`_candidates_sql`): compiling the same question with the ORM cost about ten
        times the database's time to answer it.
        """
        wanted = set(scopes)
        manager = PreAuthorization.objects.db_manager(router.db_for_read(PreAuthorization))
        ops = connections[manager.db].ops
        moment = ops.adapt_datetimefield_value(now or timezone.now())
        candidates = manager.raw(_candidates_sql(manager.db), [application.pk, True, user.pk, moment])
        for grant in candidates:
            if wanted <= grant.scopes:
                return grant
        return None


@lru_cache(maxsize=8)
def _candidates_sql(alias: str) -> str:
    """Enabled, unexpired pre-authorizations of a client for one user or for every user: the
    user's own first, then the oldest. Parameters: client pk, True, user pk, now."""
    quote = connections[alias].ops.quote_name
    column = {field.name: quote(str(field.column)) for field in PreAuthorization._meta.concrete_fields}
    pk, user = column["id"], column["user"]
    return (
        f"SELECT {pk}, {column['scope']}, {user} FROM {quote(PreAuthorization._meta.db_table)}"
        f" WHERE {column['client']} = %s AND {column['enabled']} = %s"
        f" AND ({user} IS NULL OR {user} = %s)"
        f" AND ({column['expires_at']} IS NULL OR {column['expires_at']} > %s)"
        f" ORDER BY CASE WHEN {user} IS NULL THEN 1 ELSE 0 END, {pk}"
    )


def _policies() -> list[type[DecisionPolicy] | DecisionPolicy]:
    return list(ciba_settings.DECISION_POLICIES or [])


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _policy_name(policy: Any) -> str:
    """The audit name of a policy class or instance."""
    if not isinstance(policy, type) and callable(getattr(policy, "get_name", None)):
        return str(policy.get_name())
    cls = policy if isinstance(policy, type) else type(policy)
    return str(getattr(cls, "name", "") or _dotted(cls))


def _problem(decision: object, *, user: AbstractBaseUser, scopes: list[str]) -> str:
    """Why ``decision`` cannot be carried out ("" when it can)."""
    if not isinstance(decision, Decision):
        return f"returned {type(decision).__name__}, not a Decision"
    if decision.outcome not in OUTCOMES:
        return f"returned the unknown outcome {decision.outcome!r}"
    if decision.outcome != APPROVE:
        return ""
    if not getattr(user, "is_active", False):
        return "approved for an inactive user"
    if decision.scopes is not None:
        if isinstance(decision.scopes, str) or not set(decision.scopes) <= set(scopes):
            return "granted scopes that were not requested"
        if "openid" not in decision.scopes:
            return "granted scopes without openid"
    return ""


def decide(
    *,
    application: AbstractApplication,
    ciba: CibaClient,
    user: AbstractBaseUser,
    scopes: list[str],
    request: HttpRequest | None = None,
) -> Decision:
    """Ask each configured policy in turn; the first one that does not say "ask" decides.

    A policy that raises or returns an unusable decision is logged and ends the consultation with
    "ask the user": the later policies are not asked (a failed deny-list must not let a later
    allow-list approve). A :class:`~django_ciba.exceptions.CibaError` raised by a policy propagates
    and becomes the error answer of ``bc-authorize``.
    """
    context = {"client_id": application.client_id, "user_pk": getattr(user, "pk", None)}
    requested = list(scopes)
    for entry in _policies():
        name = _policy_name(entry)
        try:
            policy = entry() if isinstance(entry, type) else entry
            name = _policy_name(policy)
            decision = policy.decide(
                application=application, ciba=ciba, user=user, scopes=list(requested), request=request
            )
            problem = _problem(decision, user=user, scopes=requested)
            if not problem and decision.outcome != ASK and not decision.actor:
                decision = Decision(
                    decision.outcome, f"policy:{name}", decision.scopes, dict(decision.detail)
                )
        except CibaError:
            raise
        except Exception:
            logger.exception(
                "Decision policy %s failed for client %s; the user will be asked.",
                name,
                application.client_id,
                extra={"ciba_policy": name, **context},
            )
            return Decision(ASK, actor="system", detail={"failed_policy": name})
        if problem:
            logger.error(
                "Decision policy %s %s (client %s); the user will be asked.",
                name,
                problem,
                application.client_id,
                extra={"ciba_policy": name, **context},
            )
            return Decision(ASK, actor="system", detail={"failed_policy": name})
        if decision.outcome != ASK:
            logger.debug(
                "Decision policy %s: %s (client %s).",
                name,
                decision.outcome,
                application.client_id,
                extra={"ciba_policy": name, "ciba_outcome": decision.outcome, **context},
            )
            return decision
    return Decision()


def apply(decision: Decision, auth_request: AuthenticationRequest) -> None:
    """Carry out an immediate decision on the freshly stored request (inside its transaction).

    Approval and denial go through :mod:`django_ciba.approval.decisions`, like a user's: the same atomic
    transition, audit event (with the policy as actor) and client callback (ping or push, held back
    until the ``bc-authorize`` answer has been sent). The device is not notified. Nobody
    authenticated, so no ``acr``, ``amr`` or ``auth_time`` is recorded and the ID tokens carry none
    (see docs/policies.rst).
    """
    if decision.outcome == APPROVE:
        decisions.approve(
            auth_request,
            user=auth_request.user,
            scopes=decision.scopes,
            actor=decision.actor or "policy",
        )
    elif decision.outcome == DENY:
        decisions.deny(auth_request, actor=decision.actor or "policy")
