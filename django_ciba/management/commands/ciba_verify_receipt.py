"""``manage.py ciba_verify_receipt``: check an approval receipt against a JWK set, offline."""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.http import HttpRequest

from django_ciba.core.receipt_jws import ReceiptInvalid, read_jwks, verify
from django_ciba.views.jwks import CibaJwksInfoView


class Command(BaseCommand):
    help = (
        "Verify a signed approval receipt (its typ, its kid, its signature and its claims) and print its "
        "claims as JSON. The receipt is read from RECEIPT, or from the file given by --receipt-file "
        "('-' for stdin). The keys are those of --jwks FILE (offline: the OP's published "
        "/o/.well-known/jwks.json saved to a file); without --jwks, this OP's own published keys. "
        "Exits 1 with the problem named when the receipt does not verify."
    )

    def add_arguments(self, parser):
        parser.add_argument("receipt", nargs="?", help="The receipt (a compact JWS).")
        parser.add_argument("--receipt-file", help="A file holding the receipt, '-' for stdin.")
        parser.add_argument("--jwks", help="A file holding the JWK set to verify with (JSON).")
        parser.add_argument("--issuer", help="Also require this iss.")

    def handle(self, *args, **options):
        receipt = self._receipt(options)
        try:
            jwks = self._jwks(options["jwks"])
            claims = verify(receipt, jwks, issuer=options["issuer"])
        except ReceiptInvalid as exc:
            raise CommandError(f"The receipt does not verify ({exc.kind}): {exc}", returncode=1) from None
        self.stdout.write(json.dumps(claims, indent=2, ensure_ascii=False, sort_keys=True))

    def _receipt(self, options):
        if options["receipt"] and options["receipt_file"]:
            raise CommandError("Give the receipt or --receipt-file, not both.", returncode=2)
        if options["receipt"]:
            return options["receipt"].strip()
        source = options["receipt_file"]
        if source is None:
            raise CommandError("Give the receipt, or --receipt-file FILE ('-' for stdin).", returncode=2)
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise CommandError(f"Cannot read the receipt: {type(exc).__name__}.", returncode=2) from None
        return text.strip()

    def _jwks(self, path):
        if path is None:
            # The set this OP serves at its jwks_uri, asked of the view itself (no network).
            request = HttpRequest()
            request.method = "GET"
            response = CibaJwksInfoView.as_view()(request)
            if response.status_code != 200:
                raise CommandError("This OP's JWK set cannot be served (see manage.py check).", returncode=2)
            return read_jwks(response.content.decode("utf-8"))
        try:
            return read_jwks(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeError) as exc:
            raise CommandError(f"Cannot read the JWK set: {type(exc).__name__}.", returncode=2) from None
