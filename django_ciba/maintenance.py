"""Deprecated: moved to :mod:`django_ciba.delivery.maintenance`. This alias goes away in the next release."""

from django_ciba.core.deprecation import moved_module


__getattr__ = moved_module(__name__, "django_ciba.delivery.maintenance")
