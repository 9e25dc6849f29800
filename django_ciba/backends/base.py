"""The contract of notification backends: what they receive, what they raise, how they are built.

A notification backend reaches the user's *authentication device* (a phone app, an e-mail inbox,
a push gateway) to say that a CIBA authentication request awaits the user's approval. It is
chosen by ``CIBA["NOTIFICATION_BACKEND"]`` and built by :func:`django_ciba.backends.get_backend`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core import checks

from django_ciba.exceptions import CibaConfigurationError


if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


@dataclass(frozen=True)
class DeviceNotification:
    """What a backend may tell the authentication device about one authentication request.

    It deliberately holds no secret: never the ``auth_req_id`` (which lets the client redeem the
    tokens), the ``user_code``, the ``client_notification_token`` or any token. The device
    identifies the request by ``auth_request_pk`` and the user proves who they are to the OP.
    """

    auth_request_pk: int
    user: AbstractBaseUser  # the Django user to reach (``.email``, ``.get_username()``, ``.pk``)
    client_id: str  # the public OAuth client_id
    client_name: str  # DOT's Application.name
    binding_message: str  # may be ""; show it in full
    scopes: tuple[str, ...]
    acr_values: tuple[str, ...]
    expires_at: datetime  # aware
    approval_url: str  # "" when the OP configured none
    # The request's authorization_details (RFC 9396) as the client sent them: client input, so
    # render them with django_ciba.core.details_rendering (bounded, escaped), never raw into HTML.
    authorization_details: tuple[Any, ...] = ()
    reminder: int = 0  # 0: the first notification; n: the n-th reminder (CIBA["REMINDERS"])

    def __post_init__(self) -> None:
        if self.expires_at.tzinfo is None or self.expires_at.utcoffset() is None:
            raise ValueError("DeviceNotification.expires_at must be an aware datetime.")
        # Lists are accepted for convenience but stored as tuples, so the object stays immutable.
        object.__setattr__(self, "scopes", tuple(self.scopes))
        object.__setattr__(self, "acr_values", tuple(self.acr_values))
        object.__setattr__(self, "authorization_details", tuple(self.authorization_details or ()))
        object.__setattr__(self, "binding_message", self.binding_message or "")
        object.__setattr__(self, "approval_url", self.approval_url or "")


class NotificationError(Exception):
    """The device could not be reached; the caller retries until the request expires.

    ``retry_after`` (seconds) asks for the next attempt no sooner than that, e.g. from a 429.
    """

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class PermanentNotificationError(NotificationError):
    """The device cannot be reached this way, so retrying is pointless.

    For example: the user has no e-mail address, or the gateway refused the request with a 4xx.
    """


class BaseNotificationBackend:
    """Base class of notification backends.

    Subclasses declare their options as keyword arguments of ``__init__`` and pass the rest on::

        class SmsBackend(BaseNotificationBackend):
            def __init__(self, *, sender: str = "", **options: Any) -> None:
                super().__init__(**options)
                self.sender = sender

    ``CIBA["NOTIFICATION_BACKEND"]["OPTIONS"]`` become these keyword arguments; an option that no
    class in the hierarchy declares is refused with :class:`CibaConfigurationError`.

    Hooks:

    * :meth:`notify` (required) delivers one notification. It returns nothing and raises on
      failure: :class:`PermanentNotificationError` when a retry cannot help, any other exception
      (preferably :class:`NotificationError`) when it might.
    * :meth:`check` (optional) returns system-check messages about the configuration.
    """

    def __init__(self, **options: Any) -> None:
        if options:
            path = f"{type(self).__module__}.{type(self).__qualname__}"
            unknown = ", ".join(repr(name) for name in sorted(options))
            accepted = ", ".join(repr(name) for name in self.accepted_options()) or "none"
            raise CibaConfigurationError(
                f"Unknown option(s) {unknown} for the notification backend {path}; "
                f"accepted options: {accepted}."
            )

    @classmethod
    def accepted_options(cls) -> list[str]:
        """The keyword arguments declared by ``__init__`` across the class hierarchy."""
        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for parameter in inspect.signature(init).parameters.values():
                if parameter.name != "self" and parameter.kind in (
                    parameter.POSITIONAL_OR_KEYWORD,
                    parameter.KEYWORD_ONLY,
                ):
                    names.add(parameter.name)
        return sorted(names)

    def notify(self, notification: DeviceNotification) -> None:
        """Tell the user's authentication device about ``notification``; raise on failure."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement notify().")

    def check(self) -> list[checks.CheckMessage]:
        """Return system-check messages about this backend's configuration (none by default)."""
        return []
