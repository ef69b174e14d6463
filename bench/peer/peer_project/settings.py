"""Settings for the benchmark peer: DRF + djangorestframework-api-key under gunicorn.

Aim: the fastest configuration a user would really deploy for an API that is
protected only by ``rest_framework_api_key.permissions.HasAPIKey``, without
touching the library's own key check.

Key hashing (djangorestframework-api-key 3.1.0, pinned in requirements.txt):
the default ``KeyGenerator`` hashes new keys with ``Sha512ApiKeyHasher``, i.e.
one unsalted ``hashlib.sha512`` of the whole key ("<prefix>.<secret>"), stored
as ``"sha512$$<hex>"``; verification looks the row up by the 8-character
prefix (a unique, indexed column), recomputes the SHA-512 and compares with
``constant_time_compare``. Keys stored by releases before 2.0 used Django's
password hashers (PBKDF2, hundreds of thousands of iterations); such keys are
verified with ``check_password`` and rewritten to SHA-512 on first success.
Every key this peer creates is SHA-512, so the benchmark measures the fast path.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# SQLite file lives in PEER_DATA_DIR (default bench/peer/.data, git-ignored).
DATA_DIR = Path(os.environ.get("PEER_DATA_DIR", BASE_DIR / ".data")).resolve()

# Benchmark-only default; API keys do not depend on it (they come from `secrets`).
SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "keygate-bench-peer-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

# Only what the endpoint needs: DRF itself and the API-key app (its model).
# No admin, auth, sessions, messages, staticfiles or contenttypes.
INSTALLED_APPS = [
    "rest_framework",
    "rest_framework_api_key",
    "verifier",
]

# No middleware: no sessions, CSRF (DRF's APIView is csrf-exempt anyway),
# auth, messages or clickjacking headers. Each request goes straight to the view.
MIDDLEWARE = []

ROOT_URLCONF = "peer_project.urls"
WSGI_APPLICATION = "peer_project.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "peer.sqlite3",
        # Keep each worker's connection open across requests (Django's default,
        # 0, reconnects on every request), as anyone tuning for speed would.
        "CONN_MAX_AGE": None,
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False

REST_FRAMEWORK = {
    # HasAPIKey is a *permission*: with no authentication classes DRF skips
    # session/basic auth entirely and never builds a user object. A failing key
    # check then gives the library's 403 (a 401 would need an authenticator
    # with a WWW-Authenticate challenge).
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "UNAUTHENTICATED_TOKEN": None,
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework_api_key.permissions.HasAPIKey",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [],
    # Render exactly {"valid": true}.
    "COMPACT_JSON": False,
}

# Quiet: errors only, to stderr; no per-request logging anywhere.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "ERROR"},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
    },
}
