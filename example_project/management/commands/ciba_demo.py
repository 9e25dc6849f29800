"""Complete CIBA flows in poll, ping and push modes against this example OP, and an agent asking
to approve a payment with authorization_details, printed step by step.

The OP is served over real HTTP on the issuer's host and port; the clients use ``requests`` and
PyJWT only, as independent clients would, and receive their ping and push callbacks on a built-in
HTTPS receiver on 127.0.0.1 (self-signed certificate made for the run). Tasks run in-process (no
broker). The pieces live in :mod:`example_project.demo`. Exit status is non-zero if any mode fails.
"""

import jwt
import requests
from django.core.management.base import BaseCommand, CommandError
from oauth2_provider.settings import oauth2_settings

from django_ciba.core.constants import CIBA_GRANT_TYPE
from example_project.demo.agent import agent_flow
from example_project.demo.environment import MODES, demo_settings, ensure_client, ensure_user, serve_op
from example_project.demo.flows import FLOWS, Demo, callback_path, run_mode
from example_project.demo.output import Printer, short
from example_project.demo.receiver import CallbackReceiver


class Command(BaseCommand):
    help = (
        "Run complete CIBA flows (poll, ping, push, and an agent's payment approval with "
        "authorization_details) against the example OP and print each step; exits non-zero if any fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--mode", choices=[*MODES, "all"], default="all", help="Default: all four.")
        parser.add_argument("--username", default="demo", help="The demo end user (created if missing).")

    def handle(self, *args, **options):
        modes = list(MODES) if options["mode"] == "all" else [options["mode"]]
        issuer = (oauth2_settings.OIDC_ISS_ENDPOINT or "").rstrip("/")
        out = Printer(self.stdout, self.style)
        receiver = CallbackReceiver()
        try:
            with serve_op(issuer), demo_settings(receiver) as ciba:
                demo = self.setup(out, issuer, receiver, ciba, options["username"])
                clients = self.register(out, receiver, modes)
                flows = {**FLOWS, "agent": agent_flow}
                results = [run_mode(demo, mode, clients[mode], flows[mode]) for mode in modes]
        finally:
            receiver.close()
        out.summary(results)
        failed = [result.mode for result in results if not result.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} mode(s) failed: {', '.join(failed)}.")
        self.stdout.write(self.style.SUCCESS(f"\nAll {len(results)} mode(s) completed."))

    def setup(self, out, issuer, receiver, ciba, username):
        out.section("Setup")
        out.step("The OP and its end user")
        user = ensure_user(username)
        out.show("OP issuer (served over http in this process)", issuer)
        out.show("end user", f"{user.get_username()} <{user.email}>")
        out.show("tasks", "in-process (Celery eager, no broker): callbacks go out as decisions commit")
        out.show("device notifications", f"{ciba['NOTIFICATION_BACKEND']['BACKEND']} (for this run)")

        out.step("The clients' callback receiver")
        out.show("listening on", receiver.url("/cb/…"))
        out.show(
            "certificate", "self-signed for 127.0.0.1, made for this run, trusted via REQUESTS_CA_BUNDLE"
        )
        out.show("CIBA['OUTBOUND']['ALLOWED_NETWORKS'] (this run)", ciba["OUTBOUND"]["ALLOWED_NETWORKS"])

        out.step("The clients read the OP's discovery document")
        http = requests.Session()
        metadata = http.get(f"{issuer}/.well-known/openid-configuration", timeout=15).json()
        for key in (
            "backchannel_authentication_endpoint",
            "token_endpoint",
            "jwks_uri",
            "backchannel_token_delivery_modes_supported",
        ):
            out.show(key, metadata.get(key))
        if CIBA_GRANT_TYPE not in metadata.get("grant_types_supported", []):
            raise CommandError("Discovery does not list the CIBA grant.")
        return Demo(out, issuer, http, metadata, jwt.PyJWKClient(metadata["jwks_uri"]), user, receiver)

    def register(self, out, receiver, modes):
        out.step("The clients: registered by manage.py ciba_create_client on the first run")
        clients = {}
        for mode in modes:
            endpoint = receiver.url(callback_path(mode)) if mode in ("ping", "push") else ""
            client = clients[mode] = ensure_client(mode, endpoint)
            out.show(
                f"{mode} client ({client.action})",
                f"client_id {client.client_id}, client_secret {short(client.client_secret)}"
                + (f", notification endpoint {endpoint}" if endpoint else ""),
            )
        return clients
