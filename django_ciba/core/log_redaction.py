"""Keep tokens out of oauthlib's DEBUG log lines (SEC-10).

oauthlib's grant types log some token values in clear at DEBUG: the refresh token being
validated, and the whole token response when a token is issued by the refresh-token,
client-credentials and password grants. :class:`RedactTokens` is attached to those loggers when
django-ciba starts (``AppConfig.ready``), so such a record keeps its message but loses its
arguments. Other records pass unchanged.

:class:`RedactAutomationQuery` does the same for the request lines that Django's development
server logs (``django.server``): the query string of the conformance suite's automated approval
URL holds its secret and an auth_req_id, and is replaced by ``[redacted]``.
"""

from __future__ import annotations

import logging
import re


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
#: The logger of ``runserver``'s request lines, and the query of the automated approval URL in one.
SERVER_LOGGER = "django.server"
AUTOMATION_QUERY = re.compile(r"(/ciba/test-automation/?)\?[^\s]*")


class RedactTokens(logging.Filter):
    """Replace the arguments of oauthlib's token-bearing DEBUG messages by ``[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in TOKEN_MESSAGES and record.args:
            count = len(record.args) if isinstance(record.args, tuple) else 1
            record.args = (REDACTED,) * count
        return True


class RedactAutomationQuery(logging.Filter):
    """Replace the query string of the automated approval URL in a logged request line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args and isinstance(record.args[0], str):
            line = AUTOMATION_QUERY.sub(rf"\1?{REDACTED}", record.args[0])
            if line != record.args[0]:
                record.args = (line, *record.args[1:])
        return True


def _add_once(name: str, kind: type[logging.Filter]) -> None:
    logger = logging.getLogger(name)
    if not any(isinstance(existing, kind) for existing in logger.filters):
        logger.addFilter(kind())


def install() -> None:
    """Attach :class:`RedactTokens` to oauthlib's grant loggers and :class:`RedactAutomationQuery`
    to the development server's (once)."""
    for name in GRANT_LOGGERS:
        _add_once(name, RedactTokens)
    _add_once(SERVER_LOGGER, RedactAutomationQuery)
