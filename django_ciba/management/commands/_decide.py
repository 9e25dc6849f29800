"""Shared plumbing of ``ciba_approve`` and ``ciba_deny``: find a request by its auth_req_id."""

import re

from django.core.management.base import BaseCommand, CommandError

from django_ciba.exceptions import DecisionError
from django_ciba.models import AuthenticationRequest


# An auth_req_id is URL-safe base64 of at least 16 bytes (22+ characters) and may start with "-".
_DASH_AUTH_REQ_ID = re.compile(r"-[A-Za-z0-9_-]{15,}")


def _dash_ids_as_positionals(option_strings, args):
    """argparse reads an auth_req_id starting with "-" as an option; pass it after "--" instead."""
    if "--" in args:
        return args
    ids = [arg for arg in args if _DASH_AUTH_REQ_ID.fullmatch(arg) and arg not in option_strings]
    if not ids:
        return args
    return [arg for arg in args if arg not in ids] + ["--", *ids]


class DecisionCommand(BaseCommand):
    verb = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Every option string of this command's parser, recorded as the options are added.
        self.option_strings: set[str] = set()

    def add_base_argument(self, parser, *args, **kwargs):
        self.option_strings.update(arg for arg in args if arg.startswith("-"))
        super().add_base_argument(parser, *args, **kwargs)

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_args = parser.parse_args

        def parse_args_with_dash_ids(args=None, namespace=None):
            if args is not None:
                args = _dash_ids_as_positionals(self.option_strings, list(args))
            return parse_args(args, namespace)

        parser.parse_args = parse_args_with_dash_ids
        return parser

    def add_arguments(self, parser):
        add_argument = parser.add_argument

        def add_recorded_argument(*args, **kwargs):
            action = add_argument(*args, **kwargs)
            self.option_strings.update(action.option_strings)
            return action

        parser.add_argument = add_recorded_argument  # the subclasses' options are recorded too
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
