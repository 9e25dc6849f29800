"""The sender-constraint half of the validator: bind issued tokens, hold presented ones to it.

See :mod:`django_ciba.tokens.sender_constraint` (token endpoint) and
:mod:`django_ciba.tokens.resource` (protected resources).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oauth2_provider.oauth2_validators import OAuth2Validator as DOTOAuth2Validator

from django_ciba.tokens import resource, sender_constraint


if TYPE_CHECKING:
    from oauthlib.common import Request

    _ValidatorBase = DOTOAuth2Validator
else:
    _ValidatorBase = object


class SenderConstraintValidatorMixin(_ValidatorBase):
    """Token bindings for :class:`~django_ciba.validators.CibaValidatorMixin`."""

    def save_bearer_token(self, token: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        """DOT stores the tokens; then their binding is recorded (``cnf``, ``token_type: DPoP``)."""
        result = super().save_bearer_token(token, request, *args, **kwargs)
        sender_constraint.bind_issued(token, request)
        return result

    def validate_bearer_token(self, token: str, scopes: list[str], request: Request) -> bool:
        """DOT's check, then the token's binding (RFC 9449 §7, RFC 8705 §3)."""
        if not super().validate_bearer_token(token, scopes, request):
            return False
        return resource.check_presented(request, request.access_token)
