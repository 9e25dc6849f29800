"""The fourth flow: a software agent asks its user to approve a payment with ``authorization_details``
(RFC 9396), waits for hours if need be, and gets tokens with a signed approval receipt.

The agent is a poll client allowed long waits (``max_requested_expiry``). It sends what the user
approves as data: an ``agent_action`` detail naming the agent and what it does, and two payments,
of which the user approves one. The demo shows the approval as the user sees it, rendered by the
types' templates and formatted for two locales, then the token response and the receipt, verified
offline with ``manage.py ciba_verify_receipt`` against the JWKS the agent downloaded.
"""

from __future__ import annotations

import base64
import json
import secrets
import tempfile
import time
from io import StringIO
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone, translation

from django_ciba.approval import decisions
from django_ciba.assurance import AuthenticationContext
from django_ciba.core import details_rendering

from .environment import DemoClient
from .flows import Demo, DemoFailure, answer, device_notified, token_request, verify_id_token
from .output import short


#: The agent may wait this long for its user (its registration allows up to eight hours).
REQUESTED_EXPIRY = 3 * 3600
#: The token response member carrying the approval receipt (docs/authorization-details.rst).
RECEIPT = "approval_receipt"


def details(client: DemoClient) -> list[dict[str, Any]]:
    """What the agent asks to do: the action, the payment it needs, and an optional extra."""
    return [
        {
            "type": "agent_action",
            "agent": {
                "name": "Trip assistant",
                "client_id": client.client_id,
                "operator": "Example Agents Ltd",
            },
            "action": "book_hotel",
            "description": "Book Hotel Müller, Berlin, 12-14 March, two nights",
        },
        {
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "1234.56"},
            "creditorName": "Müller GmbH",
            "creditorAccount": {"iban": "DE89370400440532013000"},
            "remittanceInformationUnstructured": "Booking 4711",
        },
        {
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "39.90"},
            "creditorName": "Travel Insurance AG",
            "creditorAccount": {"iban": "DE02120300000000202051"},
            "remittanceInformationUnstructured": "Cancellation cover, booking 4711",
        },
    ]


def agent_flow(demo: Demo, client: DemoClient) -> str:
    out = demo.out
    requested = details(client)
    out.step("The agent asks its user to approve a payment (authorization_details, RFC 9396)")
    form = {
        "scope": "openid",
        "login_hint": demo.user.email,
        "binding_message": f"Trip {secrets.randbelow(9000) + 1000}",
        "requested_expiry": str(REQUESTED_EXPIRY),
        "authorization_details": json.dumps(requested, ensure_ascii=False),
    }
    url = demo.metadata["backchannel_authentication_endpoint"]
    out.show("POST", url)
    out.show("form", {**form, "authorization_details": requested})
    ack = answer(demo.http.post(url, data=form, auth=client.auth, timeout=15), 200)
    out.show("answer", ack)
    if ack.get("expires_in", 0) < REQUESTED_EXPIRY - 60:
        raise DemoFailure(f"the agent was not given its long wait: expires_in {ack.get('expires_in')}")
    auth_req_id = ack["auth_req_id"]

    notification = device_notified(demo, client)
    request = decisions.get_for_user(demo.user, notification.auth_request_pk)
    show_rendered(demo, request)

    out.step("The user approves the booking and its payment, not the optional insurance")
    signed_in = AuthenticationContext(amr=("pwd",), auth_time=timezone.now())
    decisions.approve(request, user=demo.user, context=signed_in, details=[0, 1])
    out.show("request", f"#{request.pk} {request.status}")

    out.step("The agent polls the token endpoint")
    time.sleep(int(ack.get("interval", 5)))
    tokens = token_request(demo, client, auth_req_id, 200)
    out.show("answer", {key: value for key, value in tokens.items() if key != RECEIPT})
    if tokens.get("authorization_details") != requested[:2]:
        raise DemoFailure("the token response does not carry exactly the approved details")
    out.show("authorization_details", "exactly the two approved details, not the insurance")
    verify_id_token(demo, client, tokens, auth_req_id)
    receipt = tokens.get(RECEIPT)
    if not isinstance(receipt, str):
        raise DemoFailure(f"the token response carries no {RECEIPT}")
    verify_receipt(demo, receipt, requested[:2])
    return "receipt verified"


def show_rendered(demo: Demo, request: Any) -> None:
    """The details as the approval page and the notifications render them, in two locales."""
    for language in ("en", "de"):
        with translation.override(language):
            lines = details_rendering.render_details(request.authorization_details, text=True)
        demo.out.block(f"the approval shows ({language})", lines)


def verify_receipt(demo: Demo, receipt: str, approved: list[dict[str, Any]]) -> None:
    out = demo.out
    out.step("An auditor verifies the approval receipt offline (manage.py ciba_verify_receipt)")
    jwks = demo.http.get(demo.metadata["jwks_uri"], timeout=15).json()
    with tempfile.TemporaryDirectory() as directory:
        jwks_file, receipt_file = Path(directory, "jwks.json"), Path(directory, "receipt.jws")
        jwks_file.write_text(json.dumps(jwks))
        receipt_file.write_text(receipt)
        out.show("receipt", short(receipt) + f" ({len(receipt)} characters, kept by the agent)")
        out.show(
            "JWKS", f"{len(jwks.get('keys', []))} key(s), downloaded once from {demo.metadata['jwks_uri']}"
        )
        printed = StringIO()
        try:
            call_command(
                "ciba_verify_receipt", receipt_file=str(receipt_file), jwks=str(jwks_file), stdout=printed
            )
        except CommandError as exc:
            raise DemoFailure(f"the receipt does not verify: {exc}")
        claims = json.loads(printed.getvalue())
        out.show("verified claims", claims)
        if claims.get("authorization_details") != approved:
            raise DemoFailure("the receipt does not state exactly the approved details")
        out.step("The same check refuses the receipt with its amount changed (12.34 instead of 1234.56)")
        receipt_file.write_text(tampered(receipt))
        try:
            call_command(
                "ciba_verify_receipt", receipt_file=str(receipt_file), jwks=str(jwks_file), stdout=printed
            )
        except CommandError as exc:
            out.show("ciba_verify_receipt", str(exc))
        else:
            raise DemoFailure("a tampered receipt verified")


def tampered(receipt: str) -> str:
    """``receipt`` with its payload edited and its signature kept."""
    header, payload, signature = receipt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["authorization_details"][1]["instructedAmount"]["amount"] = "12.34"
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode("ascii")
    return f"{header}.{edited}.{signature}"
