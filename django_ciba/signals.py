"""Signals for integrators. Arguments never carry secrets (no auth_req_id, token or user_code).

Every signal is sent with ``sender=AuthenticationRequest`` and these keyword arguments:
``auth_request_pk``, ``client_id`` (the OAuth client_id, public), ``user_pk`` and ``delivery_mode``.
"""

from django.dispatch import Signal


#: A request passed validation and was stored (after the transaction commits).
auth_request_created = Signal()
#: The user approved the request on the authentication device.
auth_request_approved = Signal()
#: The user (or an operator) denied the request.
auth_request_denied = Signal()
#: An operator expired the request, or it timed out.
auth_request_expired = Signal()
#: Tokens were issued for the request.
tokens_issued = Signal()


def send(signal: Signal, auth_request: object) -> None:
    """Send ``signal`` for ``auth_request`` with the documented, secret-free arguments."""
    from .models import AuthenticationRequest

    assert isinstance(auth_request, AuthenticationRequest)
    signal.send(
        sender=AuthenticationRequest,
        auth_request_pk=auth_request.pk,
        client_id=auth_request.client.client_id,
        user_pk=auth_request.user_id,
        delivery_mode=auth_request.delivery_mode,
    )
