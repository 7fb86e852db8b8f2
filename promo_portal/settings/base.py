"""Settings shared by every environment, read strictly from the environment.

Every variable is optional for the embedded default (SQLite under ``var/``, eager Celery), and
every value that is set is validated: a malformed one raises ``ImproperlyConfigured`` at start-up
instead of surfacing later as odd behaviour.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from promo_portal.env import (
    env,
    env_bool,
    env_broker_url,
    env_email_url,
    env_int,
    env_list,
    env_path,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = env_path("PROMO_VAR_DIR", default=BASE_DIR / "var")

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default=None)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_celery_results",
    "django_celery_beat",
    "campaigns",
    "modeling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in user's language, over what LocaleMiddleware negotiated.
    "campaigns.preferences.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "campaigns.tenancy.TenancyGuardMiddleware",
]

ROOT_URLCONF = "promo_portal.urls"
# The admin lives at a configurable path, so that production can keep it off the obvious URL.
ADMIN_URL = env("ADMIN_URL", default="admin/")
if not ADMIN_URL.endswith("/") or ADMIN_URL.startswith("/"):
    raise ImproperlyConfigured(f"ADMIN_URL must look like 'admin/', not {ADMIN_URL!r}.")
WSGI_APPLICATION = "promo_portal.wsgi.application"
ASGI_APPLICATION = "promo_portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "campaigns.context_processors.tenancy",
            ],
        },
    },
]

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL, e.g. postgres://user:pass@host:5432/promo (psycopg 3). Default: SQLite in var/.
DATABASES = {
    "default": env_url(
        "DATABASE_URL",
        default=f"sqlite:///{VAR_DIR / 'promo_portal.sqlite3'}",
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DATABASE_CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serializes writers; a generous timeout avoids "database is locked" in the demo.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalization -------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["promo_portal.formats"]  # zh-hans amounts keep their thousands commas
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and uploaded files ----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", default=VAR_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", default=VAR_DIR / "media")
UPLOAD_ROOT = env_path("UPLOAD_ROOT", default=VAR_DIR / "uploads")
MODEL_ARTIFACT_ROOT = env_path("MODEL_ARTIFACT_ROOT", default=VAR_DIR / "models")
# Networks averaged in each trained model (modeling.training_config.TrainingConfig.members);
# 0 keeps the model's own default (5, measured on bench/quality.py). Fewer train faster on a
# small machine at some cost in the quality of the coupon choice.
MODEL_MEMBERS = env_int("MODEL_MEMBERS", default=0)
NODE_MODULES_DIR = BASE_DIR / "node_modules"


def _plotly_js_dir() -> Path:
    # plotly.min.js ships inside the installed plotly package; serve that copy, not a CDN.
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data"


STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", NODE_MODULES_DIR / "bootstrap" / "dist"),
    ("vendor/bootstrap-icons", NODE_MODULES_DIR / "bootstrap-icons" / "font"),
    ("vendor/htmx", NODE_MODULES_DIR / "htmx.org" / "dist"),
    ("vendor/swagger-ui", NODE_MODULES_DIR / "swagger-ui-dist"),
    ("vendor/plotly", _plotly_js_dir()),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Request bodies held in memory (the REST bulk endpoints take JSON or CSV up to this size).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024 * 1024)
# Uploaded import files are streamed to UPLOAD_ROOT; larger ones are refused with a clear message.
IMPORT_MAX_UPLOAD_BYTES = env_int("IMPORT_MAX_UPLOAD_MB", default=2048, minimum=1) * 1024 * 1024
# An events import's checked rows wait here until the whole file has passed (about 1.5 times
# the file's size, removed when the import ends): next to the uploads, on the same volume.
IMPORT_SPOOL_ROOT = env_path("IMPORT_SPOOL_ROOT", default=UPLOAD_ROOT / ".spool")
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)

# --- Email (invitations, password reset) ---------------------------------------------------
# EMAIL_URL, e.g. smtp+tls://user:password@mail.example.com:587; default: print to the console.
globals().update(env_email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Promo Portal <noreply@localhost>")

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first, so that unauthenticated API calls answer 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"login": "20/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Promo Portal API",
    "DESCRIPTION": (
        "Push customers, events and outcomes; pull coupon assignments. Every merchant-scoped "
        "path starts with /api/v1/merchants/{merchant}/ and answers 404 for merchants the "
        "caller does not belong to."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files come from the npm package swagger-ui-dist, served locally (no CDN).
    "SWAGGER_UI_DIST": "/" + STATIC_URL + "vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": "/" + STATIC_URL + "vendor/swagger-ui/favicon-32x32.png",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobKindEnum": "modeling.choices.JobKind",
        "ImportKindEnum": "campaigns.choices.ImportKind",
        "JobStatusEnum": "modeling.choices.JobStatus",
        "ImportStatusEnum": "campaigns.choices.ImportStatus",
        "CampaignStatusEnum": "campaigns.choices.CampaignStatus",
        "StrategyStatusEnum": "campaigns.choices.StrategyStatus",
    },
}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env_broker_url("CELERY_BROKER_URL")
# Without a broker (the embedded demo) tasks run eagerly in-process; the in-memory transport
# stands in for the broker nobody connects to.
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_BROKER_URL = CELERY_BROKER_URL or "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_CACHE_BACKEND = "django-cache"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", default=30 * 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", default=35 * 60)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "modeling.tasks.train_*": {"queue": "training"},
    "modeling.tasks.score_*": {"queue": "scoring"},
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Must exceed the longest task's hard time limit, or Redis redelivers a running task.
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 10 * 60,
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat copies these into its database schedule on start (where admins can change them).
CELERY_BEAT_SCHEDULE = {
    "complete-ended-campaigns": {
        "task": "campaigns.tasks.complete_ended_campaigns",
        "schedule": 15 * 60,  # seconds: an applied campaign shows completed soon after its end
    },
    "retrain-due-merchants": {
        "task": "modeling.tasks.retrain_due_merchants",
        # seconds (modeling.retraining_service.RETRAIN_CHECK_SECONDS): a merchant's scheduled
        # retraining starts within the hour it falls due.
        "schedule": 60 * 60,
    },
}
CELERY_TIMEZONE = TIME_ZONE

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
