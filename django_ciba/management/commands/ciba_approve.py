from django_ciba import decisions

from ._decide import DecisionCommand


class Command(DecisionCommand):
    help = "Approve a pending CIBA request as its hinted user."
    verb = "approved"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--scope", help="Grant only these scopes (space-separated; must keep openid).")
        parser.add_argument("--acr", default="")

    def decide(self, auth_request, options):
        scopes = options["scope"].split() if options.get("scope") else None
        decisions.approve(auth_request, user=auth_request.user, scopes=scopes, acr=options["acr"])
