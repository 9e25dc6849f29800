"""Keep tokens out of oauthlib's DEBUG log lines (SEC-10).

oauthlib's grant types log some token values in clear at DEBUG: the refresh token being
validated, and the whole token response when a token is issued by the refresh-token,
client-credentials and password grants. :class:`RedactTokens` is attached to those loggers when
django-ciba starts (``AppConfig.ready``), so such a record keeps its message but loses its
arguments. Other records pass unchanged.
"""

from __future__ import annotations

import logging


GRANT_LOGGERS = (
    "oauthlib.oauth2.rfc6749.grant_types.refresh_token",
    "oauthlib.oauth2.rfc6749.grant_types.client_credentials",
    "oauthlib.oauth2.rfc6749.grant_types.resource_owner_password_credentials",
)
#: The oauthlib messages whose arguments hold a token (the whole response or a refresh token).
TOKEN_MESSAGES = frozenset(
    {
        "Validating refresh token %s for client %r.",
        "Invalid refresh token, %s, for client %r.",
        "Refresh token %s lack requested scopes, %r.",
        "Issuing new token to client id %r (%r), %r.",
        "Issuing token to client id %r (%r), %r.",
        "Issuing token %r to client id %r (%r) and username %s.",
    }
)
REDACTED = "[redacted]"


class RedactTokens(logging.Filter):
    """Replace the arguments of oauthlib's token-bearing DEBUG messages by ``[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in TOKEN_MESSAGES and record.args:
            count = len(record.args) if isinstance(record.args, tuple) else 1
            record.args = (REDACTED,) * count
        return True


def install() -> None:
    """Attach :class:`RedactTokens` to oauthlib's grant loggers (once)."""
    for name in GRANT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
            logger.addFilter(RedactTokens())
