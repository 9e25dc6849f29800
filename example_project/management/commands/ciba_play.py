"""Play both sides of CIBA in two browser tabs: the client console and the approval pages.

``manage.py ciba_play`` migrates if needed, creates the demo user (with a password printed for the
approval pages' sign-in) and the poll, ping and push clients (new secrets each run, kept for the
console in the Django cache), starts the clients' HTTPS callback receiver (self-signed certificate
made for the run) and serves the OP, the approval pages and the demo client console
(:mod:`example_project.console`) on 127.0.0.1 with a threaded server, until Ctrl-C. Tasks run
in-process (no broker); a housekeeping thread runs the outbox sweep and the expiry every 10 s.

``--receiver-only`` (used by ``scripts/serve-production-like``) does the same setup but serves only
the callback receiver: gunicorn serves the OP and the console, a Celery worker delivers the
callbacks, and all of them share a Redis cache (``CIBA_EXAMPLE_REDIS_URL``).
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections
from django.test import override_settings
from oauth2_provider.settings import oauth2_settings

from example_project.console import state
from example_project.console.receiver import ConsoleReceiver
from example_project.demo.environment import DELIVERY_MODES, ensure_client, ensure_user
from example_project.demo.flows import callback_path


HOUSEKEEPING_SECONDS = 10.0


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the server's signature
        pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Serve the example OP with the approval pages and a demo client console (/console/) to play "
        "both sides of CIBA in two browser tabs (SQLite, tasks in-process), until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, help="Serve on 127.0.0.1:PORT (default: the issuer's port, 8000)."
        )
        parser.add_argument("--username", default="demo", help="The demo end user (default: demo).")
        parser.add_argument("--password", help="Set this password (default: a new random one, printed).")
        parser.add_argument(
            "--receiver-only",
            action="store_true",
            help="Set up, then serve only the callback receiver (scripts/serve-production-like).",
        )
        parser.add_argument(
            "--ca-file",
            help="Also write the receiver's certificate here (REQUESTS_CA_BUNDLE of other processes).",
        )

    def handle(self, *args, **options):
        issuer = (oauth2_settings.OIDC_ISS_ENDPOINT or "").rstrip("/")
        origin = urlparse(issuer)
        if origin.scheme != "http" or not origin.hostname:
            raise CommandError(
                f"ciba_play serves plain http: the issuer must be http://host:port/o, not {issuer!r}."
            )
        port = options["port"] or origin.port or 80
        overrides = {}
        if options["port"] and options["port"] != origin.port:
            if options["receiver_only"]:
                raise CommandError("--port does not apply with --receiver-only (set CIBA_EXAMPLE_ISSUER).")
            issuer = f"http://127.0.0.1:{port}{origin.path}"
            overrides = self.issuer_overrides(issuer)
        signal.signal(signal.SIGTERM, _raise_interrupt)  # a clean stop on SIGTERM too
        call_command("migrate", interactive=False, verbosity=0)
        receiver = ConsoleReceiver(on_callback=self.callback_line)
        try:
            with override_settings(**overrides):
                config = self.setup(issuer, receiver, options)
                if options["ca_file"]:
                    write_atomically(Path(options["ca_file"]), Path(receiver.ca_file).read_bytes())
                if options["receiver_only"]:
                    self.instructions(config, options, serving=False)
                    threading.Event().wait()
                else:
                    self.serve(config, port, options)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping.")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C does not cut the cleanup
                signal.signal(signum, signal.SIG_IGN)
            receiver.close()
            try:
                state.clear_config()
            except Exception:  # the cache may be gone already (a Ctrl-C also stops Redis)
                pass

    def issuer_overrides(self, issuer):
        """Settings for an issuer on another port than the settings' (this process only)."""
        provider = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": issuer}
        ciba = dict(getattr(settings, "CIBA", None) or {})
        if ciba.get("APPROVAL_URL"):
            ciba["APPROVAL_URL"] = f"{issuer}/ciba/requests/{{pk}}/"
        return {"OAUTH2_PROVIDER": provider, "CIBA": ciba}

    def setup(self, issuer, receiver, options):
        user = ensure_user(options["username"])
        password = options["password"] or secrets.token_urlsafe(9)
        user.set_password(password)
        user.save(update_fields=["password"])
        clients = {}
        for mode in DELIVERY_MODES:
            endpoint = receiver.url(callback_path(mode)) if mode != "poll" else ""
            client = ensure_client(mode, endpoint)
            clients[mode] = {
                "client_id": client.client_id,
                "client_secret": client.client_secret,  # demo only: kept for the console
                "notification_endpoint": endpoint,
            }
        # In-process deliveries (no broker) trust the receiver's certificate (read per call).
        os.environ["REQUESTS_CA_BUNDLE"] = receiver.ca_file
        base = issuer.removesuffix(urlparse(issuer).path)
        config = {
            "issuer": issuer,
            "username": user.get_username(),
            "clients": clients,
            "receiver": receiver.url("/cb/"),
            "approval_pages": f"{issuer}/ciba/requests/",
            "console": f"{base}/console/",
            "tasks": "in-process" if settings.CELERY_TASK_ALWAYS_EAGER else "Celery worker",
        }
        state.save_config(config)
        config["password"] = password  # printed, never stored in the cache
        return config

    def serve(self, config, port, options):
        try:
            server = ThreadedWSGIServer(("127.0.0.1", port), _QuietHandler, allow_reuse_address=True)
        except OSError as exc:
            raise CommandError(f"Cannot serve on 127.0.0.1:{port} ({exc}). Free that port or use --port.")
        server.set_app(WSGIHandler())
        stop = threading.Event()
        housekeeping = threading.Thread(
            target=run_housekeeping, args=(stop,), name="housekeeping", daemon=True
        )
        housekeeping.start()
        self.instructions(config, options, serving=True)
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            stop.set()
            server.server_close()
            housekeeping.join(5)

    def instructions(self, config, options, *, serving):
        style, write = self.style, self.stdout.write
        write(style.MIGRATE_HEADING("django-ciba: play both sides of CIBA"))
        if serving:
            write(f"  OP (issuer)           {config['issuer']}   (tasks {config['tasks']})")
            write(f"  Tab 1, the client:    {style.SUCCESS(config['console'])}")
            write(f"  Tab 2, the user:      {style.SUCCESS(config['approval_pages'])}")
        write(f"  Sign in as            {options['username']} / password {style.SUCCESS(config['password'])}")
        write(f"  Callback receiver     {config['receiver']}…  (self-signed, trusted by the OP for this run)")
        for mode, client in config["clients"].items():
            write(f"  {mode} client           {client['client_id']}")
        write("  Client secrets were rotated for this run; the console holds them (demo only).")
        if serving:
            write("  In tab 1 pick a mode and Start; in tab 2 sign in, open the request, Approve or Deny;")
            write("  tab 1 shows the polls, the ping or the push, then the verified ID token or the error.")
            write("  Device notifications are printed below by the console backend. Ctrl-C stops.")
        write(style.SUCCESS("Ready." if serving else "Callback receiver ready."))
        self.stdout.flush()

    def callback_line(self, callback, request_id):
        target = f"request #{request_id}" if request_id is not None else "no request (bad bearer token)"
        self.stdout.write(f"[receiver] POST {callback.path} for {target}: answered {callback.status}")
        self.stdout.flush()


def run_housekeeping(stop):
    """What beat does with a broker: sweep the outbox (retries), expire requests (push errors) and
    remind users of requests waiting long."""
    from django_ciba.tasks import expire_requests, remind_requests, sweep_outbox

    while not stop.wait(HOUSEKEEPING_SECONDS):
        try:
            expire_requests()
            remind_requests()
            sweep_outbox()
        except Exception as exc:  # keep serving; the next round tries again
            print(f"[housekeeping] {type(exc).__name__}: {exc}")
        finally:
            connections.close_all()


def write_atomically(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
