"""A complete poll-mode CIBA flow against this example OP, printed step by step.

The OP is served over real HTTP on the issuer's host and port; the client side uses ``requests``
and PyJWT only, as an independent client would. Exit status is non-zero if any step fails.
"""

import json
import threading
import time
from urllib.parse import urlparse
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import jwt
import requests
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from oauth2_provider.settings import oauth2_settings

from django_ciba import decisions
from django_ciba.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - wsgiref's signature
        pass


class _ThreadedServer(WSGIServer):
    daemon_threads = True


def _short(secret: str) -> str:
    """Show only the start of a secret value."""
    return secret[:6] + "…"


class Command(BaseCommand):
    help = "Run a complete poll-mode CIBA flow against the example OP and print each step."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def step(self, number, title):
        self.stdout.write(self.style.MIGRATE_HEADING(f"\n{number}. {title}"))

    def show(self, label, value):
        if not isinstance(value, str):
            value = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n   ")
        self.stdout.write(f"   {label}: {value}")

    def handle(self, *args, **options):
        issuer = oauth2_settings.OIDC_ISS_ENDPOINT
        origin = urlparse(issuer or "")
        if origin.scheme != "http" or not origin.hostname:
            raise CommandError(
                f"The demo serves plain http: CIBA_EXAMPLE_ISSUER must be http://host:port/o, not {issuer!r}."
            )
        try:
            server = make_server(
                origin.hostname, origin.port or 80, WSGIHandler(), _ThreadedServer, _QuietHandler
            )
        except OSError as exc:
            raise CommandError(
                f"Cannot serve the demo OP on {origin.netloc} ({exc}). Free that port or set "
                "CIBA_EXAMPLE_ISSUER, e.g. CIBA_EXAMPLE_ISSUER=http://127.0.0.1:8765/o"
            )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            self.run_flow(issuer, options["username"])
        finally:
            server.shutdown()
            server.server_close()

    def run_flow(self, issuer, username):
        http = requests.Session()
        self.step(1, "The OP and its users")
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        self.show("OP issuer", issuer)
        self.show("end user", f"{user.get_username()} <{user.email}>")

        self.step(2, "An operator registers a poll-mode client (manage.py ciba_create_client)")
        out = _Capture()
        call_command(
            "ciba_create_client",
            name="Demo teller terminal",
            mode="poll",
            scope="openid profile email offline_access",
            stdout=out,
        )
        client = json.loads(out.text)
        self.show("client_id", client["client_id"])
        self.show("client_secret", _short(client["client_secret"]))
        auth = (client["client_id"], client["client_secret"])

        self.step(3, "The client reads the OP's discovery document")
        metadata = http.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
        for key in (
            "backchannel_authentication_endpoint",
            "token_endpoint",
            "jwks_uri",
            "backchannel_token_delivery_modes_supported",
        ):
            self.show(key, metadata[key])
        if CIBA_GRANT_TYPE not in metadata.get("grant_types_supported", []):
            raise CommandError("Discovery does not list the CIBA grant.")

        self.step(4, "The client starts a backchannel authentication request")
        form = {
            "scope": "openid profile offline_access",
            "login_hint": user.email,
            "binding_message": "Demo 4821",
        }
        self.show("POST", f"{metadata['backchannel_authentication_endpoint']} {form}")
        response = http.post(
            metadata["backchannel_authentication_endpoint"], data=form, auth=auth, timeout=10
        )
        ack = self._json(response, 200)
        auth_req_id = ack["auth_req_id"]
        self.show("answer", {**ack, "auth_req_id": _short(auth_req_id)})

        self.step(5, "The client polls the token endpoint before the user has answered")
        poll = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
        pending = self._json(http.post(metadata["token_endpoint"], data=poll, auth=auth, timeout=10), 400)
        self.show("answer", pending)
        if pending.get("error") != "authorization_pending":
            raise CommandError("Expected authorization_pending.")

        self.step(6, "On the authentication device, the user sees the request and approves it")
        request_row = AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()
        self.show(
            "device shows",
            {
                "client": request_row.client.name,
                "scope": request_row.scope,
                "binding_message": request_row.binding_message,
                "expires_in": request_row.seconds_left(),
            },
        )
        decisions.approve(request_row, user=user, acr="urn:example:acr:demo", amr=["pwd"])
        self.show("status", "approved")

        interval = int(ack.get("interval", 5))
        self.step(7, f"The client waits its interval ({interval} s) and polls again")
        time.sleep(interval)
        tokens = self._json(http.post(metadata["token_endpoint"], data=poll, auth=auth, timeout=10), 200)
        self.show(
            "answer",
            {key: (_short(value) if key.endswith("token") else value) for key, value in tokens.items()},
        )

        self.step(8, "The client verifies the ID token against the OP's JWKS (PyJWT)")
        signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(tokens["id_token"])
        claims = jwt.decode(
            tokens["id_token"],
            signing_key.key,
            algorithms=["RS256"],
            audience=client["client_id"],
            issuer=issuer,
        )
        if claims.get(AUTH_REQ_ID_CLAIM) != auth_req_id:
            raise CommandError("The ID token does not carry the auth_req_id claim.")
        shown = {**claims, AUTH_REQ_ID_CLAIM: _short(claims[AUTH_REQ_ID_CLAIM])}
        self.show("signature", f"valid (kid {signing_key.key_id})")
        self.show("claims", shown)

        self.step(9, "The auth_req_id is single use")
        reuse = self._json(http.post(metadata["token_endpoint"], data=poll, auth=auth, timeout=10), 400)
        self.show("answer", reuse)
        self.stdout.write(self.style.SUCCESS("\nPoll-mode CIBA flow completed: ID token verified."))

    def _json(self, response, expected_status):
        try:
            body = response.json()
        except ValueError:
            raise CommandError(f"HTTP {response.status_code} without JSON from {response.url}")
        if response.status_code != expected_status:
            raise CommandError(f"HTTP {response.status_code} from {response.url}: {body}")
        return body


class _Capture:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass
