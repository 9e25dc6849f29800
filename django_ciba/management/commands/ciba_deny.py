from django_ciba import audit
from django_ciba.approval import decisions
from django_ciba.management.commands._decide import DecisionCommand


class Command(DecisionCommand):
    help = "Deny a pending CIBA request as its hinted user."
    verb = "denied"

    def decide(self, auth_request, options):
        decisions.deny(auth_request, user=auth_request.user, actor=audit.operator_actor(None))
