"""Server settings of the benchmark: ``example_project.settings`` tuned like a production deployment.

Environment (set by the harness, read by gunicorn, the Celery worker and the harness alike):

``BENCH_CONN_MAX_AGE``     persistent database connections (seconds, default 600; gthread only)
``BENCH_SERVER``           ``gthread`` (default) or ``asgi``: under ASGI each request's sync code
                           runs in a thread (and a database connection) of its own, so persistent
                           connections would pile up: CONN_MAX_AGE is 0 and PostgreSQL connections
                           come from psycopg's pool (Django's ``OPTIONS["pool"]``), as Django's
                           documentation advises for ASGI
``BENCH_REDIS_URL``        Redis server for the cache (db 1) and Celery results (db 2); default: the
                           host of ``CELERY_BROKER_URL``
``BENCH_SECRET_HASHER``    ``fast`` (default): client secrets hashed with
                           ``django_ciba.hashers.ClientSecretHasher`` (``ciba_sha256``), or stored in
                           clear when that module is missing; ``default``: DOT's default hasher
                           (the first of ``PASSWORD_HASHERS``: PBKDF2)
``BENCH_EQUALIZE_TIMING``  ``0`` switches ``CIBA["EQUALIZE_UNKNOWN_USER_TIMING"]`` off (the
                           login_hint timing comparison, ``benchmarks/login_hint_timing.py``)
``BENCH_PYINSTRUMENT_DIR`` profile every request with pyinstrument, merged per process, into this
                           directory (the fallback when py-spy cannot attach)
"""

import os
from urllib.parse import urlsplit, urlunsplit

from example_project.settings import *  # noqa: F403
from example_project.settings import CIBA, DATABASES, MIDDLEWARE, OAUTH2_PROVIDER


DEBUG = False

BENCH_SERVER = os.environ.get("BENCH_SERVER", "gthread")
if BENCH_SERVER == "asgi":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 2,
            "max_size": 16,
            "timeout": 10,
        }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("BENCH_CONN_MAX_AGE", "600"))


def _redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


_REDIS = os.environ.get("BENCH_REDIS_URL") or os.environ.get("CELERY_BROKER_URL") or ""
if _REDIS.startswith("redis"):
    # The slow_down bookkeeping must be shared by every gunicorn worker (README: use a shared cache).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis_db(_REDIS, 1),
        }
    }
    # Only the benchmark's own baseline task (benchmarks.tasks.noop) stores a result.
    CELERY_RESULT_BACKEND = _redis_db(_REDIS, 2)

ROOT_URLCONF = "benchmarks.urls"  # the example project's URLs and the bare-Django floor (benchmarks/floor.py)
CELERY_IMPORTS = ["benchmarks.tasks"]

# The abuse controls stay on, so their cost (cache counters, the pending and unapproved-prompt
# counts, the superseding lookup) is measured, but with limits the load (a few clients and users,
# hundreds of requests a second) never reaches.
CIBA.update(
    MAX_PENDING_PER_USER=10**9,
    LIMITS={
        **CIBA.get("LIMITS", {}),
        "CLIENT_RATE": [10**9, 60],
        "USER_RATE": [10**9, 60],
        "PENDING_PER_CLIENT_USER": 10**9,
        "UNAPPROVED_PROMPTS": [10**9, 60],
        "UNAPPROVED_PROMPTS_CEILING": [10**9, 60],
    },
)
if os.environ.get("BENCH_EQUALIZE_TIMING") == "0":
    CIBA["EQUALIZE_UNKNOWN_USER_TIMING"] = False


def _fast_hasher_available() -> bool:
    try:
        from django_ciba.hashers import ClientSecretHasher  # noqa: F401
    except ImportError:
        return False
    return True


BENCH_SECRET_HASHER = os.environ.get("BENCH_SECRET_HASHER", "fast")
if BENCH_SECRET_HASHER == "fast" and _fast_hasher_available():
    from django.conf.global_settings import PASSWORD_HASHERS as _DJANGO_HASHERS

    # Django's default stays first (user passwords); the fast one only hashes client secrets.
    PASSWORD_HASHERS = [*_DJANGO_HASHERS, "django_ciba.hashers.ClientSecretHasher"]
    OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "ciba_sha256"
    BENCH_SECRET_STORAGE = "ciba_sha256"
elif BENCH_SECRET_HASHER == "fast":
    # django_ciba.hashers is not there yet: the harness stores the benchmark clients' secrets in
    # clear (Application.hash_client_secret=False), which DOT compares in constant time.
    BENCH_SECRET_STORAGE = "plain"
else:
    # DOT's own default: make_password() with the first of PASSWORD_HASHERS (PBKDF2, a million rounds).
    OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "default"
    BENCH_SECRET_STORAGE = "default"

if os.environ.get("BENCH_PYINSTRUMENT_DIR"):
    MIDDLEWARE = ["benchmarks.profiling.PyinstrumentMiddleware", *MIDDLEWARE]
