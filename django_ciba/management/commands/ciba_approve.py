import argparse

from django.core.management.base import CommandError

from django_ciba import audit
from django_ciba.approval import decisions
from django_ciba.management.commands._decide import DecisionCommand


class Command(DecisionCommand):
    help = (
        "Approve a pending CIBA request as its hinted user (an operator approval: nobody "
        "authenticated, so the ID token carries no acr, amr or auth_time)."
    )
    verb = "approved"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--scope", help="Grant only these scopes (space-separated; must keep openid).")
        # Kept only to refuse it clearly: an operator cannot vouch for how the user authenticated.
        parser.add_argument("--acr", default=None, help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        if options.get("acr") is not None:
            raise CommandError(
                "--acr is not accepted: an operator approval is not an authentication of the user, "
                "so it records no acr, amr or auth_time."
            )
        return super().handle(*args, **options)

    def decide(self, auth_request, options):
        scopes = options["scope"].split() if options.get("scope") else None
        # Audited (and stated in an approval receipt) as an operator's decision, not the user's.
        actor = audit.operator_actor(None)
        decisions.approve(auth_request, user=auth_request.user, scopes=scopes, actor=actor)
