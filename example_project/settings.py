"""Settings of the example OpenID Provider.

Environment: ``CIBA_EXAMPLE_ISSUER`` (default ``http://127.0.0.1:8000/o``), ``DATABASE_URL`` (default:
SQLite in this folder), ``CELERY_BROKER_URL`` (default: tasks run in-process; with a broker run
``celery -A example_project worker -B``), ``CIBA_EXAMPLE_KEY_FILE`` (the OIDC signing key,
generated on first use; ``CIBA_EXAMPLE_ES256_KEY_FILE`` and ``CIBA_EXAMPLE_PS256_KEY_FILE``, the ID
token keys, default next to it), ``CIBA_EXAMPLE_SETTINGS`` (JSON merged into ``CIBA``, e.g. for tests),
``CIBA_EXAMPLE_SWEEP_SECONDS`` (outbox sweep period, default 10), ``DJANGO_DEBUG``,
``CIBA_EXAMPLE_REDIS_URL`` (a shared Redis cache instead of the per-process local memory one),
``CIBA_EXAMPLE_CONN_MAX_AGE`` (Django's ``CONN_MAX_AGE``, default 0), ``CIBA_EXAMPLE_PROXY_HTTPS``
(``1``: served behind a TLS-terminating proxy, see ``SECURE_PROXY_SSL_HEADER`` below).
"""

import json
import os
from pathlib import Path
from urllib.parse import urlparse

from django_ciba.core import authorization_schemas
from django_ciba.openapi import SPECTACULAR_SETTINGS as CIBA_OPENAPI_SETTINGS
from django_ciba.tasks import beat_schedule

from .database import database_from_url
from .keys import load_or_create_ec_key, load_or_create_rsa_key


BASE_DIR = Path(__file__).resolve().parent
ISSUER = os.environ.get("CIBA_EXAMPLE_ISSUER", "http://127.0.0.1:8000/o").rstrip("/")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", urlparse(ISSUER).hostname or "127.0.0.1"]
# CIBA_EXAMPLE_PROXY_HTTPS=1: the project is only reached through a TLS-terminating proxy (nginx in
# tests/integration/tls.py) that always sets X-Forwarded-Proto itself, so request.is_secure() and
# build_absolute_uri() say https (DPoP's htu, RFC 9449 §4.3, is compared with that URL). Never set
# it when clients can reach the app directly: they could then claim https with that header.
if os.environ.get("CIBA_EXAMPLE_PROXY_HTTPS") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "rest_framework",
    "drf_spectacular",  # the OpenAPI description at /openapi.yaml (optional for django-ciba)
    "django_ciba",
    "example_project",
]

MIDDLEWARE = [
    # First: a form body declared in another charset than UTF-8 is answered 400 invalid_request
    # (JSON) before anything reads it, DEBUG on or off.
    "django_ciba.middleware.MalformedBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database outage is answered 503 temporarily_unavailable (JSON), not a 500.
    "django_ciba.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "example_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
WSGI_APPLICATION = "example_project.wsgi.application"

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"), BASE_DIR / "db.sqlite3")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and DATABASES["default"]["NAME"] != ":memory:":
    # Several writers at once (runserver's threads, gunicorn's workers and threads): WAL lets readers
    # go on while one transaction writes, and BEGIN IMMEDIATE takes the write lock when a transaction
    # starts, so a writer waits (up to "timeout" seconds) instead of failing with "database is
    # locked" when it upgrades a read transaction that another writer overtook.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        timeout=20,
    )
# Persistent database connections (seconds; 0, the default, closes them after each request and,
# in a Celery worker, after each task). runserver makes a thread per request: keep 0 with it.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CIBA_EXAMPLE_CONN_MAX_AGE", "0"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"
# End users sign in on the approval pages' own sign-in page (django_ciba:login, o/ciba/login/):
# this project has no login page of its own, so the pages need no LOGIN_URL setting.

# Client secrets are machine-generated (384 bits): one salted HMAC-SHA256 instead of PBKDF2's
# million rounds on every poll. User passwords keep Django's default hasher (listed first).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django_ciba.hashers.ClientSecretHasher",
]

# The OIDC key (DOT's RS256) and, in the same directory, the ES256 and PS256 ID token keys.
KEY_FILE = Path(os.environ.get("CIBA_EXAMPLE_KEY_FILE", BASE_DIR / ".oidc_key.pem"))
ID_TOKEN_KEY_FILES = {
    "ES256": Path(os.environ.get("CIBA_EXAMPLE_ES256_KEY_FILE", KEY_FILE.with_name(".oidc_es256_key.pem"))),
    "PS256": Path(os.environ.get("CIBA_EXAMPLE_PS256_KEY_FILE", KEY_FILE.with_name(".oidc_ps256_key.pem"))),
}

OAUTH2_PROVIDER = {
    "CLIENT_SECRET_HASHER": "ciba_sha256",
    "OIDC_ENABLED": True,
    "OIDC_ISS_ENDPOINT": ISSUER,
    "OIDC_RSA_PRIVATE_KEY": load_or_create_rsa_key(KEY_FILE),
    "OAUTH2_SERVER_CLASS": "django_ciba.server.Server",
    "OAUTH2_VALIDATOR_CLASS": "django_ciba.validators.OAuth2Validator",
    "OAUTH2_BACKEND_CLASS": "django_ciba.oauthlib_core.OAuthLibCore",
    "SCOPES": {
        "openid": "Sign you in",
        "profile": "See your name",
        "email": "See your e-mail address",
        "offline_access": "Keep access while you are away",
    },
    "DEFAULT_SCOPES": ["openid"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": [
        "client_credentials",
        "refresh_token",
        "urn:openid:params:grant-type:ciba",
    ],
}

CIBA = {
    # ID tokens signed PS256 or ES256 for the clients registered so (docs/id-tokens.rst).
    "ID_TOKEN_SIGNING_KEYS": [
        {"alg": "ES256", "key": load_or_create_ec_key(ID_TOKEN_KEY_FILES["ES256"])},
        {"alg": "PS256", "key": load_or_create_rsa_key(ID_TOKEN_KEY_FILES["PS256"])},
    ],
    # Local development and tests: callbacks may reach loopback receivers (still https only).
    "OUTBOUND": {"ALLOWED_NETWORKS": ["127.0.0.0/8", "::1/128"]},
    # Device notifications link to the approval page of the request (django_ciba:request), which is
    # served under the issuer's path like every django_ciba URL.
    "APPROVAL_URL": f"{ISSUER}/ciba/requests/{{pk}}/",
    # Rich authorization requests (docs/authorization-details.rst): the two shipped types, rendered
    # by their shipped templates; the user may approve some payments of a request and not others.
    "AUTHORIZATION_DETAILS": {
        "TYPES": {
            "payment_initiation": {
                "SCHEMA": authorization_schemas.PAYMENT,
                "TEMPLATE": "django_ciba/authorization_details/payment.html",
                "TEXT_TEMPLATE": "django_ciba/authorization_details/payment.txt",
                "SUBSET": True,
            },
            "agent_action": {
                "SCHEMA": authorization_schemas.AGENT_ACTION,
                "TEMPLATE": "django_ciba/authorization_details/agent_action.html",
                "TEXT_TEMPLATE": "django_ciba/authorization_details/agent_action.txt",
            },
        },
    },
}
# CIBA_EXAMPLE_SETTINGS: a section given there (e.g. {"OUTBOUND": {"READ_TIMEOUT": 3}}) is merged into
# the one above; any other key replaces the value above.
for _key, _value in json.loads(os.environ.get("CIBA_EXAMPLE_SETTINGS") or "{}").items():
    if isinstance(_value, dict) and isinstance(CIBA.get(_key), dict):
        CIBA[_key] = {**CIBA[_key], **_value}
    else:
        CIBA[_key] = _value

# OpenAPI (drf-spectacular): django-ciba's endpoints, served at /openapi.yaml and /openapi/.
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {**CIBA_OPENAPI_SETTINGS, "TITLE": "django-ciba example OP"}

# Celery: in-process (eager) unless a broker is configured.
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
# In-process mode never talks to a broker (eager tasks only serialize through this in-memory one).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes the worker's database connection after every task unless this is set; with it,
# CONN_MAX_AGE decides, as on the app servers (docs/deployment.rst, "Celery worker and beat").
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = beat_schedule(sweep=float(os.environ.get("CIBA_EXAMPLE_SWEEP_SECONDS", "10")))

# A Redis cache shared by every process (gunicorn's workers, the Celery worker, the demo console and
# its callback receiver: scripts/serve-production-like) when CIBA_EXAMPLE_REDIS_URL is set, e.g.
# redis://127.0.0.1:6379/1; otherwise Django's default per-process local memory cache.
if os.environ.get("CIBA_EXAMPLE_REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["CIBA_EXAMPLE_REDIS_URL"],
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # Protocol errors (4xx) are answers, not incidents: only log server errors.
    "loggers": {"django.request": {"level": "ERROR"}},
}
