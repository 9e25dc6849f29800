"""Settings of the test suite: SQLite in memory, or the database named by ``DATABASE_URL``."""

import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from example_project.database import database_from_url


@lru_cache
def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


SECRET_KEY = "tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "oauth2_provider",
    "rest_framework",
    "drf_spectacular",
    "django_ciba",
]
MIDDLEWARE = [
    "django_ciba.middleware.MalformedBodyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_ciba.middleware.DatabaseUnavailableMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"), Path(":memory:"))}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["NAME"] = ":memory:"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# Fast hasher for test speed only; production keeps Django's defaults.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

ISSUER = "http://testserver/o"
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": ISSUER,
    "OIDC_RSA_PRIVATE_KEY": _pem(),
    "OAUTH2_SERVER_CLASS": "django_ciba.server.Server",
    "OAUTH2_VALIDATOR_CLASS": "django_ciba.validators.OAuth2Validator",
    "OAUTH2_BACKEND_CLASS": "django_ciba.oauthlib_core.OAuthLibCore",
    "SCOPES": {
        "openid": "OpenID",
        "profile": "Profile",
        "email": "E-mail",
        "offline_access": "Offline access",
        "payments": "Payments",
    },
    "DEFAULT_SCOPES": ["openid"],
    "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
}
CIBA = {
    # Record device notifications in memory (django_ciba.backends.locmem.outbox).
    "NOTIFICATION_BACKEND": {"BACKEND": "django_ciba.backends.locmem.LocmemBackend"},
}

# Celery tasks run in-process (the app is example_project.celery, imported by tests/conftest.py).
CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# The OpenAPI description (tests/unit/test_openapi.py).
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
from django_ciba.openapi import SPECTACULAR_SETTINGS  # noqa: E402, F401  (drf-spectacular reads it)
