"""The authorization-details half of the validator: granted details go with the tokens (RFC 9396 §7).

See :mod:`django_ciba.tokens.authorization_details`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oauth2_provider.oauth2_validators import OAuth2Validator as DOTOAuth2Validator

from django_ciba.tokens import authorization_details


if TYPE_CHECKING:
    from oauthlib.common import Request

    _ValidatorBase = DOTOAuth2Validator
else:
    _ValidatorBase = object


class AuthorizationDetailsValidatorMixin(_ValidatorBase):
    """Granted authorization details for :class:`~django_ciba.validators.CibaValidatorMixin`."""

    def save_bearer_token(self, token: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
        """DOT stores the tokens; then the granted details join the response and the access token."""
        result = super().save_bearer_token(token, request, *args, **kwargs)
        authorization_details.record_issued(token, request)
        return result
