"""Pairwise sectors a client proves (OIDC Core §8.1, OIDC Registration §5, CIBA Core §4; REG-06).

Two clients of one sector get the same pairwise ``sub`` for a user, so a sector must be something
the client shows it controls, never just a URL it names. The rules
(:func:`~django_ciba.models.sectors.proven_sector`) are the same for dynamic registration and its
updates (RFC 7591, RFC 7592), the admin and ``manage.py ciba_create_client``:

* with a ``sector_identifier_uri``, its host; the document there is fetched and must be a JSON
  array of URLs listing at least one URL the client really uses
  (:func:`~django_ciba.models.sectors.sector_proof_uris`: a push client's notification endpoint,
  or the ``jwks_uri`` of a client authenticating with ``private_key_jwt``), plus every
  ``redirect_uris`` value (OIDC Registration §2); a client with no such URL cannot name one;
* otherwise the host of the push client's notification endpoint, else of the ``private_key_jwt``
  client's ``jwks_uri``;
* anything else is refused with ``invalid_client_metadata``.

Each refusal is an :class:`~django_ciba.exceptions.InvalidClientMetadata` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django_ciba.core import outbound
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidClientMetadata
from django_ciba.models.choices import SubjectType
from django_ciba.models.sectors import sector_problem, sector_proof_uris


#: Model field -> registration metadata name, for error descriptions.
METADATA_NAMES = {"subject_type": "subject_type", "sector_identifier_uri": "sector_identifier_uri"}


def require_sector(client: Any) -> None:
    """Check, without the network, that a pairwise ``client`` can prove a sector."""
    problem = sector_problem(client)
    if problem is not None:
        field, message = problem
        raise InvalidClientMetadata(f"{METADATA_NAMES.get(field, field)}: {message}")


def check_sector_identifier(client: Any, redirect_uris: Iterable[str] = ()) -> None:
    """Fetch ``client.sector_identifier_uri`` and check that it lists a URL the client uses.

    Nothing to do without a ``sector_identifier_uri`` or for a public client (whose subjects do not
    depend on it; it is checked once the client turns pairwise). The document must be a JSON array
    of strings listing at least one of the client's proof URIs and every ``redirect_uris`` value.
    """
    url = client.sector_identifier_uri
    if not url or client.subject_type != SubjectType.PAIRWISE:
        return
    name = "sector_identifier_uri"
    proofs = sector_proof_uris(client)
    if not proofs:
        require_sector(client)  # pairwise: the precise reason
        raise InvalidClientMetadata(f"{name}: the client uses no URL such a document could list.")
    try:
        document = json.loads(outbound.get_document(url, max_bytes=int(ciba_settings.JWKS_MAX_BYTES)))
    except outbound.OutboundError as exc:
        raise InvalidClientMetadata(f"{name}: could not be fetched ({exc})")
    except (ValueError, RecursionError):
        raise InvalidClientMetadata(f"{name}: the document is not valid JSON.")
    if not isinstance(document, list) or not all(isinstance(item, str) for item in document):
        raise InvalidClientMetadata(f"{name}: the document must be a JSON array of URLs.")
    missing = [uri for uri in redirect_uris if uri and uri not in document]
    if missing:
        raise InvalidClientMetadata(f"{name}: the document does not list a redirect_uris value.")
    if not any(uri in document for uri in proofs):
        raise InvalidClientMetadata(
            f"{name}: the document does not list {' or '.join(proofs.values())}, a URL this client uses."
        )


def validate_sector(client: Any, *, redirect_uris: Iterable[str] = (), previous: Any = None) -> None:
    """:func:`require_sector` and :func:`check_sector_identifier` for a pairwise ``client``.

    ``previous`` is the stored registration being changed, if any: when none of the fields the
    sector depends on changed, nothing is checked (and nothing fetched), so that an operator can
    still edit, e.g. disable, a client stored before sectors had to be proven.
    """
    if client.subject_type != SubjectType.PAIRWISE:
        return
    if (
        previous is not None
        and previous.pk is not None
        and previous.sector_inputs() == client.sector_inputs()
    ):
        return
    require_sector(client)
    check_sector_identifier(client, redirect_uris)


__all__ = ["check_sector_identifier", "require_sector", "validate_sector"]
