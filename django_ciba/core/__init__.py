"""Infrastructure every other part may use: settings, outbound HTTP, sealing, JWK sets, identifiers.

Nothing in ``core`` imports from the rest of django-ciba except ``django_ciba.exceptions``.
"""
