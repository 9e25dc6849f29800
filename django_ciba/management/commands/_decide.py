"""Shared plumbing of ``ciba_approve`` and ``ciba_deny``: find a request by its auth_req_id."""

from django.core.management.base import BaseCommand, CommandError

from django_ciba.exceptions import DecisionError
from django_ciba.models import AuthenticationRequest


class DecisionCommand(BaseCommand):
    verb = ""

    def add_arguments(self, parser):
        parser.add_argument("auth_req_id")

    def decide(self, auth_request, options):
        raise NotImplementedError

    def handle(self, *args, **options):
        auth_request = (
            AuthenticationRequest.objects.by_auth_req_id(options["auth_req_id"])
            .select_related("user")
            .first()
        )
        if auth_request is None:
            raise CommandError("No authentication request has that auth_req_id.")
        try:
            self.decide(auth_request, options)
        except DecisionError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"{auth_request} {self.verb} as user {auth_request.user.get_username()!r}.")
