"""Karimasu settings: one module, everything from the environment (12-factor).

Every value has an embedded default that makes `make run` work with nothing installed
(SQLite, Kombu's filesystem broker, a file cache). Production sets the environment; every
secret may also be given as a file through `<NAME>_FILE` (Kubernetes secrets mounted as
files). A bad value stops the process at start with a message naming the variable.

README.md lists every variable.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv()


def _env_or_fail(name: str, cast, default):  # type: ignore[no-untyped-def]
    """Read one variable and turn django-environ's parse errors into a named message."""
    try:
        return cast(name, default=default)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{name} has an invalid value: {exc}") from exc


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _strict_bool(name: str, default: bool) -> bool:
    """Like env.bool, but a typo ("ture", "maybe") is an error, not a silent False."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


DEBUG = _strict_bool("DEBUG", True)

# Mutable state of the embedded demo (SQLite file, broker folders, caches) lives here.
VAR_DIR = Path(env.str("KARIMASU_VAR_DIR", default=str(BASE_DIR / "var")))

_DEV_SECRET_KEY = "django-insecure-karimasu-dev-only-never-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off; "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = _DEV_SECRET_KEY

# Values published in this repository's examples and docs: a deployment that copied one
# would run with a key (or password) everybody knows. Refused unless DEBUG (the demo).
KNOWN_PLACEHOLDER_SECRET_KEYS = frozenset(
    {
        _DEV_SECRET_KEY,
        "replace-me-with-50-random-characters",
        "collectstatic-only",
        "change-me",
        "changeme",
        "secret",
    }
)
# A password containing one of these is an example's, not a site's.
PLACEHOLDER_PASSWORD_MARKERS = ("replace-me", "change-me", "changeme")


def _placeholder_password(url: str) -> bool:
    """True when the URL's password is an example's (postgres://u:replace-me@host/db)."""
    from urllib.parse import urlsplit

    try:
        password = urlsplit(url).password or ""
    except ValueError:
        return False
    return any(marker in password.lower() for marker in PLACEHOLDER_PASSWORD_MARKERS)


if not DEBUG and SECRET_KEY in KNOWN_PLACEHOLDER_SECRET_KEYS:
    raise ImproperlyConfigured(
        "SECRET_KEY is a published example value; generate one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

ALLOWED_HOSTS = _env_or_fail(
    "ALLOWED_HOSTS", env.list, ["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
CSRF_TRUSTED_ORIGINS = _env_or_fail("CSRF_TRUSTED_ORIGINS", env.list, [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "portal.accounts",
    "scheduler",
    "scheduler.telemetry",
    "querygate",
    "pipelines",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.api.middleware.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.accounts.middleware.UserLanguageMiddleware",
    "portal.accounts.middleware.UserTimezoneMiddleware",
    # The portal's 404 page even under DEBUG (the demo): portal/error_pages.py.
    "portal.error_pages.FriendlyNotFoundMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it answers a locked-out sign-in with its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.accounts.views.sso_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": _env_or_fail("DATABASE_URL", env.db_url, f"sqlite:///{VAR_DIR / 'karimasu.sqlite3'}")
}
_db = DATABASES["default"]
if _db["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
    raise ImproperlyConfigured(
        f"DATABASE_URL must be postgres://... (production) or sqlite:///... (demo), "
        f"not {_db['ENGINE']!r}"
    )
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; the timeout waits for the
    # writer instead of failing with "database is locked".
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # The Celery worker test reads the test database from another process, so the SQLite
    # test database is a file, not pytest-django's in-memory default.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    _db.setdefault("CONN_MAX_AGE", _env_or_fail("DATABASE_CONN_MAX_AGE", env.int, 60))
    _db.setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache (throttling, rate state) ---------------------------------------------------
CACHES = {"default": _env_or_fail("CACHE_URL", env.cache_url, f"filecache://{VAR_DIR / 'cache'}")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # The same backend, reusing its Redis client (portal/cache.py: 0.2 ms per cache call).
    CACHES["default"]["BACKEND"] = "portal.cache.RedisCache"

# --- Auth ----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes: sign-in throttling and lockout. AxesStandaloneBackend refuses a locked-out
# username+address before the password is checked; failures are recorded in the database.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _env_or_fail("LOGIN_FAILURE_LIMIT", env.int, 5)
AXES_COOLOFF_TIME = timedelta(minutes=_env_or_fail("LOGIN_LOCKOUT_MINUTES", env.float, 15.0))
# Per username and address together: guessing one person's password from one place is
# stopped, and nobody can lock a colleague out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "portal.api.throttling.client_ip"  # trusts KARIMASU_TRUSTED_PROXIES
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False

# --- Single sign-on (OpenID Connect, mozilla-django-oidc): on when OIDC_RP_CLIENT_ID is set --
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_OP_ISSUER = env.str("OIDC_OP_ISSUER", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default="")
OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
try:
    from portal.accounts.oidc_config import parse_group_teams

    OIDC_GROUP_TEAMS = parse_group_teams(env.str("OIDC_GROUP_TEAMS", default=""))
except ValueError as _exc:
    raise ImproperlyConfigured(f"OIDC_GROUP_TEAMS has an invalid value: {_exc}") from _exc
OIDC_ADMIN_GROUPS = _env_or_fail("OIDC_ADMIN_GROUPS", env.list, [])
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
if OIDC_RP_CLIENT_ID:
    _missing = [
        name
        for name in (
            "OIDC_RP_CLIENT_SECRET",
            "OIDC_OP_AUTHORIZATION_ENDPOINT",
            "OIDC_OP_TOKEN_ENDPOINT",
            "OIDC_OP_USER_ENDPOINT",
            "OIDC_OP_JWKS_ENDPOINT",
        )
        if not globals()[name]
    ]
    if _missing:
        raise ImproperlyConfigured(f"OIDC_RP_CLIENT_ID is set but not {', '.join(_missing)}")
    AUTHENTICATION_BACKENDS.append("portal.accounts.oidc.KarimasuOIDCBackend")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalization -------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- HTTPS and cookies (on by default in production) ------------------------------------
_prod = not DEBUG
SECURE_SSL_REDIRECT = _strict_bool("SECURE_SSL_REDIRECT", _prod)
SESSION_COOKIE_SECURE = _strict_bool("SESSION_COOKIE_SECURE", _prod)
CSRF_COOKIE_SECURE = _strict_bool("CSRF_COOKIE_SECURE", _prod)
SECURE_HSTS_SECONDS = _env_or_fail("SECURE_HSTS_SECONDS", env.int, 31_536_000 if _prod else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _strict_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _prod)
SECURE_HSTS_PRELOAD = _strict_bool("SECURE_HSTS_PRELOAD", _prod)
if _strict_bool("SECURE_PROXY_SSL_HEADER", False):
    # Behind a TLS-terminating ingress that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Kubernetes probes speak plain HTTP to the pod.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Request size ---------------------------------------------------------------------
# Bodies over this get 413 before any parsing (portal.api.middleware, portal.api.parsers).
DATA_UPLOAD_MAX_MEMORY_SIZE = _env_or_fail("MAX_REQUEST_BYTES", env.int, 1_048_576)

# --- Email ----------------------------------------------------------------------------
_email = _env_or_fail("EMAIL_URL", env.email_url, "consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "")
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="karimasu@localhost")

# --- REST API -------------------------------------------------------------------------
# How many reverse proxies in front of the portal append to X-Forwarded-For: the client's
# address for throttles and login lockouts is the N-th from the right (0: REMOTE_ADDR; a
# client-supplied X-Forwarded-For is never believed beyond N).
KARIMASU_TRUSTED_PROXIES = _env_or_fail("KARIMASU_TRUSTED_PROXIES", env.int, 0)
# Seconds a live API token's lookup is kept in the cache (0: every request queries).
KARIMASU_TOKEN_CACHE_SECONDS = _env_or_fail("KARIMASU_TOKEN_CACHE_SECONDS", env.float, 30.0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["portal.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.PagePagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "portal.api.throttling.AnonThrottle",
        "portal.api.throttling.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "user": env.str("API_THROTTLE_USER", default="600/min"),
    },
    "EXCEPTION_HANDLER": "portal.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Karimasu API",
    "DESCRIPTION": (
        "GPU bookings, training jobs on the shared GPU nodes, and the SQL query gate. "
        "Authenticate with `Authorization: Bearer <token>`; create tokens at /api/v1/tokens/. "
        'Every error has the shape {"error": {"code", "message", "details"}}.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the sidecar package, not a CDN: sites run without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "ENUM_NAME_OVERRIDES": {
        "LanguageEnum": "portal.accounts.models.User.Language",
        "JobStatusEnum": "scheduler.models.jobs.JobStatus",
        "ReservationStatusEnum": "scheduler.models.reservations.ReservationStatus",
    },
    "SERVE_AUTHENTICATION": [
        "portal.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

# --- Query gate ---------------------------------------------------------------------------
# Small queries run inside the request for up to this long, then move to a Celery worker.
QUERYGATE_INLINE_SECONDS = _env_or_fail("QUERYGATE_INLINE_SECONDS", env.float, 5.0)
# After a cancel, how long before pg_terminate_backend; 3x this marks an executor as lost.
QUERYGATE_KILL_GRACE_SECONDS = _env_or_fail("QUERYGATE_KILL_GRACE_SECONDS", env.float, 10.0)
QUERYGATE_WATCHDOG_SECONDS = _env_or_fail("QUERYGATE_WATCHDOG_SECONDS", env.float, 5.0)
QUERYGATE_RESULTS_DIR = Path(
    env.str("QUERYGATE_RESULTS_DIR", default=str(VAR_DIR / "query-results"))
)
QUERYGATE_RESULTS_RETENTION_HOURS = _env_or_fail(
    "QUERYGATE_RESULTS_RETENTION_HOURS", env.float, 168.0
)
QUERYGATE_CATALOG_REFRESH_SECONDS = _env_or_fail(
    "QUERYGATE_CATALOG_REFRESH_SECONDS", env.float, 3600.0
)
# Engine calls run under these limits (DuckDB: in a sandbox child process; PostgreSQL:
# work_mem, temp_file_limit and the result cap). See docs/querygate.md, "Threat model".
QUERYGATE_SANDBOX_MEMORY_MB = _env_or_fail("QUERYGATE_SANDBOX_MEMORY_MB", env.int, 2048)
QUERYGATE_SANDBOX_THREADS = _env_or_fail("QUERYGATE_SANDBOX_THREADS", env.int, 2)
QUERYGATE_TEMP_MB = _env_or_fail("QUERYGATE_TEMP_MB", env.int, 1024)
QUERYGATE_MAX_RESULT_MB = _env_or_fail("QUERYGATE_MAX_RESULT_MB", env.int, 32)
# Full exports (a query submitted with export: its whole result as a Parquet download):
# at most this many rows and MiB of Arrow data; 0 turns exports off. Per warehouse: the
# policy keys max_export_rows / max_export_mb.
QUERYGATE_MAX_EXPORT_ROWS = _env_or_fail("QUERYGATE_MAX_EXPORT_ROWS", env.int, 10_000_000)
QUERYGATE_MAX_EXPORT_MB = _env_or_fail("QUERYGATE_MAX_EXPORT_MB", env.int, 2048)
# The engine's EXPLAIN (analysis and submission) gets this long; then it is dropped.
QUERYGATE_EXPLAIN_SECONDS = _env_or_fail("QUERYGATE_EXPLAIN_SECONDS", env.float, 2.0)
# Analysis audit rows (one per pause in the SQL editor's typing) are kept this long.
QUERYGATE_ANALYZE_AUDIT_RETENTION_DAYS = _env_or_fail(
    "QUERYGATE_ANALYZE_AUDIT_RETENTION_DAYS", env.float, 30.0
)
# A queued query no worker has started after this long is marked lost (never run late).
QUERYGATE_MAX_QUEUE_SECONDS = _env_or_fail("QUERYGATE_MAX_QUEUE_SECONDS", env.float, 300.0)
# A running query whose executor has not reported for this long is marked lost.
QUERYGATE_HEARTBEAT_TIMEOUT_SECONDS = _env_or_fail(
    "QUERYGATE_HEARTBEAT_TIMEOUT_SECONDS", env.float, 30.0
)

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND",
    default=CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith("redis")
    else f"file://{VAR_DIR / 'celery-results'}",
)
CELERY_RESULT_EXPIRES = 3600
# One queue by default; a deployment (or a test's own worker) may name another.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = _strict_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "purge-dead-api-tokens": {
        "task": "accounts.purge_dead_tokens",
        "schedule": 6 * 3600,
    },
    "querygate-watchdog": {
        "task": "querygate.enforce_budgets",
        "schedule": QUERYGATE_WATCHDOG_SECONDS,
    },
    "querygate-purge-results": {
        "task": "querygate.purge_results",
        "schedule": 3600.0,
    },
    "querygate-refresh-catalogs": {
        "task": "querygate.refresh_catalogs",
        "schedule": QUERYGATE_CATALOG_REFRESH_SECONDS,
    },
    "telemetry-retention": {
        "task": "telemetry.apply_retention",
        "schedule": 600.0,
    },
    "check-idle-bookings": {
        "task": "scheduler.check_idle_bookings",
        "schedule": 60.0,
    },
    "advance-reservations": {
        "task": "scheduler.advance_reservations",
        "schedule": 60.0,
    },
    "schedule-cycle": {
        "task": "scheduler.schedule_cycle",
        "schedule": _env_or_fail("KARIMASU_CYCLE_SECONDS", env.float, 5.0),
    },
    "sync-cluster": {
        "task": "scheduler.sync_cluster",
        "schedule": _env_or_fail("KARIMASU_CLUSTER_SYNC_SECONDS", env.float, 15.0),
    },
    "pipelines-tick": {
        "task": "pipelines.tick",
        "schedule": _env_or_fail("PIPELINES_TICK_SECONDS", env.float, 10.0),
    },
    "pipelines-purge": {
        "task": "pipelines.purge",
        "schedule": 3600.0,
    },
    "session-lifecycle": {
        "task": "scheduler.session_lifecycle",
        "schedule": _env_or_fail("KARIMASU_SESSION_CHECK_SECONDS", env.float, 30.0),
    },
}
CELERY_TIMEZONE = TIME_ZONE

# --- Pipelines ----------------------------------------------------------------------
# Dataset versions (Parquet and step outputs). On a cluster this directory and the named
# mount PIPELINES_DATASETS_MOUNT (an admin's NamedMount) must be the same storage: container
# steps read their inputs and write their output through sub-paths of that mount.
PIPELINES_DATASETS_DIR = Path(env.str("PIPELINES_DATASETS_DIR", default=str(VAR_DIR / "datasets")))
PIPELINES_DATASETS_MOUNT = env.str("PIPELINES_DATASETS_MOUNT", default="")

# --- Cluster ------------------------------------------------------------------------
# KUBECONFIG: a kubeconfig file (the demo writes var/kubeconfig for the emulator). Unset,
# Karimasu uses the in-cluster service account when it runs in a pod, else no cluster.
KUBECONFIG = env.str("KUBECONFIG", default="")
KARIMASU_JOBS_NAMESPACE = env.str("KARIMASU_JOBS_NAMESPACE", default="karimasu-jobs")
# A job whose pod vanished (node lost, Job deleted behind our back) is requeued until it has
# had this many attempts, then failed.
KARIMASU_MAX_ATTEMPTS = _env_or_fail("KARIMASU_MAX_ATTEMPTS", env.int, 3)
# Training containers run as this uid (Pod Security "restricted" forbids root).
KARIMASU_JOB_RUN_AS_USER = _env_or_fail("KARIMASU_JOB_RUN_AS_USER", env.int, 1000)
# Secrets in the jobs namespace used to pull private training images.
KARIMASU_IMAGE_PULL_SECRETS = _env_or_fail("KARIMASU_IMAGE_PULL_SECRETS", env.list, [])

# --- Job queue --------------------------------------------------------------------------
KARIMASU_MAX_JOB_RUNTIME_HOURS = _env_or_fail("KARIMASU_MAX_JOB_RUNTIME_HOURS", env.int, 168)
# An admitted job still not running after this long is stopped and requeued (a bad image,
# a missing secret, a node that cannot start it), failed after KARIMASU_MAX_ATTEMPTS.
KARIMASU_START_TIMEOUT_SECONDS = _env_or_fail("KARIMASU_START_TIMEOUT_SECONDS", env.float, 600.0)
# Finished attempts' logs are archived here (on the shared volume in a deployment).
KARIMASU_JOB_LOGS_DIR = Path(env.str("KARIMASU_JOB_LOGS_DIR", default=str(VAR_DIR / "job-logs")))
KARIMASU_JOB_LOG_MAX_MB = _env_or_fail("KARIMASU_JOB_LOG_MAX_MB", env.int, 50)
# A log follow streams for at most this long per request (the client asks again).
KARIMASU_LOG_FOLLOW_SECONDS = _env_or_fail("KARIMASU_LOG_FOLLOW_SECONDS", env.float, 25.0)
# The Kubernetes PriorityClass of job pods (k8s/base/priorityclass.yaml; empty: none).
KARIMASU_POD_PRIORITY_CLASS = env.str("KARIMASU_POD_PRIORITY_CLASS", default="")
# How job pods get their GPUs: "dra" (a ResourceClaim for exactly the booked devices, NVIDIA's
# DRA driver), "device-plugin" (nvidia.com/gpu: N, the cluster picks which GPUs), or "auto"
# (DRA on the nodes the driver publishes, when the cluster serves resource.k8s.io/v1 and the
# DeviceClass gpu.nvidia.com). docs/cluster.md, "GPU allocation".
KARIMASU_GPU_ALLOCATION = env.str("KARIMASU_GPU_ALLOCATION", default="auto")
if KARIMASU_GPU_ALLOCATION not in ("auto", "dra", "device-plugin"):
    raise ImproperlyConfigured(
        f"KARIMASU_GPU_ALLOCATION={KARIMASU_GPU_ALLOCATION!r}: expected auto, dra or device-plugin"
    )
# Scratch space per job (/scratch), requested as ephemeral storage.
KARIMASU_JOB_SCRATCH_GB = _env_or_fail("KARIMASU_JOB_SCRATCH_GB", env.int, 20)
# Registries jobs may pull from (empty: any); e.g. "registry.example.com,nvcr.io".
KARIMASU_ALLOWED_REGISTRIES = _env_or_fail("KARIMASU_ALLOWED_REGISTRIES", env.list, [])
# Annotation prefixes users may set on their jobs' pods besides unprefixed keys.
KARIMASU_JOB_ANNOTATION_PREFIXES = _env_or_fail("KARIMASU_JOB_ANNOTATION_PREFIXES", env.list, [])
# best-fit keeps whole nodes free for big jobs (see scheduler/core/snapshot.py: Packing).
KARIMASU_PACKING = env.str("KARIMASU_PACKING", default="best-fit")
if KARIMASU_PACKING not in ("best-fit", "worst-fit"):
    raise ImproperlyConfigured("KARIMASU_PACKING must be best-fit or worst-fit")
KARIMASU_CYCLE_SECONDS = _env_or_fail("KARIMASU_CYCLE_SECONDS", env.float, 5.0)
# Multi-node jobs (docs/scheduler.md, "Multi-node jobs"): the most nodes one job may span,
# the node label whose value groups nodes by rack/switch (a gang's nodes come from one group
# first), the port of rank 0's rendezvous, and the extended resources (RDMA/InfiniBand) a
# gang's pods request one of when every node of the gang advertises it (prefixes end in "/").
KARIMASU_MAX_JOB_NODES = _env_or_fail("KARIMASU_MAX_JOB_NODES", env.int, 8)
KARIMASU_TOPOLOGY_LABEL = env.str("KARIMASU_TOPOLOGY_LABEL", default="karimasu.io/rack")
KARIMASU_GANG_MASTER_PORT = _env_or_fail("KARIMASU_GANG_MASTER_PORT", env.int, 29500)
KARIMASU_RDMA_RESOURCES = _env_or_fail(
    "KARIMASU_RDMA_RESOURCES", env.list, ["rdma/", "nvidia.com/hostdev"]
)

# --- GPU telemetry ---------------------------------------------------------------------------
KARIMASU_TELEMETRY_RAW_RETENTION_HOURS = _env_or_fail(
    "KARIMASU_TELEMETRY_RAW_RETENTION_HOURS", env.float, 24.0
)
KARIMASU_TELEMETRY_ROLLUP_RETENTION_DAYS = _env_or_fail(
    "KARIMASU_TELEMETRY_ROLLUP_RETENTION_DAYS", env.float, 90.0
)
# Readings dated further ahead than this (or older than the rollup retention) are refused.
KARIMASU_TELEMETRY_MAX_CLOCK_SKEW_SECONDS = _env_or_fail(
    "KARIMASU_TELEMETRY_MAX_CLOCK_SKEW_SECONDS", env.float, 300.0
)

# --- Team webhooks ----------------------------------------------------------------------------
# Hosts an admin allows as webhook targets although they resolve to internal addresses (an
# on-prem chat server); http is allowed for them too. Others: https to public addresses only.
KARIMASU_WEBHOOK_ALLOWED_HOSTS = _env_or_fail("KARIMASU_WEBHOOK_ALLOWED_HOSTS", env.list, [])

# --- Bookings: idle auto-release ----------------------------------------------------------
KARIMASU_IDLE_THRESHOLD_PERCENT = _env_or_fail("KARIMASU_IDLE_THRESHOLD_PERCENT", env.float, 5.0)
KARIMASU_IDLE_GRACE_MINUTES = _env_or_fail("KARIMASU_IDLE_GRACE_MINUTES", env.int, 30)
KARIMASU_IDLE_WINDOW_MINUTES = _env_or_fail("KARIMASU_IDLE_WINDOW_MINUTES", env.int, 15)
# Interactive sessions (docs/sessions.md): a session whose GPUs (NVML) and workspace
# (its /api/status last_activity) were both idle this long is stopped (0: never).
KARIMASU_SESSION_IDLE_MINUTES = _env_or_fail("KARIMASU_SESSION_IDLE_MINUTES", env.int, 60)
# On-demand sessions (no booking): how long one runs when the user does not say, and the
# most it may run in all, extensions included (hours).
KARIMASU_SESSION_DEFAULT_HOURS = _env_or_fail("KARIMASU_SESSION_DEFAULT_HOURS", env.float, 4.0)
KARIMASU_SESSION_MAX_HOURS = _env_or_fail("KARIMASU_SESSION_MAX_HOURS", env.float, 12.0)

# --- No example passwords in production ------------------------------------------------
if not DEBUG:
    for _name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "CELERY_RESULT_BACKEND"):
        if _placeholder_password(env.str(_name, default="")):
            raise ImproperlyConfigured(
                f"{_name} carries an example password (replace-me/change-me); "
                "set the site's real password"
            )

# --- Logging: one line per event, greppable ---------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# The embedded defaults keep their state in VAR_DIR; create only what is in use.
_state_dirs = [STATIC_ROOT] if DEBUG else []  # WhiteNoise warns when it is missing
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    _state_dirs.append(VAR_DIR)
if CELERY_BROKER_URL.startswith("filesystem"):
    _state_dirs += [_broker_dir / "queue", _broker_dir / "control"]
if CELERY_RESULT_BACKEND.startswith("file://"):
    _state_dirs.append(Path(CELERY_RESULT_BACKEND.removeprefix("file://")))
for _folder in _state_dirs:
    _folder.mkdir(parents=True, exist_ok=True)
