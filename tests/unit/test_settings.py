"""Settings read strictly from the environment.

Two layers: the helpers in ``promo_portal.env`` (in-process, with monkeypatch), and whole
settings modules imported in a fresh interpreter with a controlled environment, since a settings
module is evaluated once per process. No database is used: ``manage.py check --deploy`` does not
connect unless ``--database`` is given.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
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

REPO_ROOT = Path(__file__).resolve().parents[2]
VAR = "PROMO_TEST_SETTING"  # the variable the helper tests read
PASSWORD = "s3cretPassw0rd"  # must never appear in an error message

# ---------------------------------------------------------------------------------------------
# env
# ---------------------------------------------------------------------------------------------


def test_env_returns_stripped_value(monkeypatch):
    monkeypatch.setenv(VAR, "  value  ")
    assert env(VAR) == "value"


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_required_when_unset_or_blank(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv(VAR, raising=False)
    else:
        monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=VAR):
        env(VAR)
    assert env(VAR, default=None) is None
    assert env(VAR, default="fallback") == "fallback"


# ---------------------------------------------------------------------------------------------
# env_bool
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        (" true ", True),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("Off", False),
    ],
)
def test_env_bool_accepted_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv(VAR, raw)
    assert env_bool(VAR, default=not expected) is expected


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_default_when_unset_or_blank(monkeypatch, default):
    monkeypatch.delenv(VAR, raising=False)
    assert env_bool(VAR, default=default) is default
    monkeypatch.setenv(VAR, "")
    assert env_bool(VAR, default=default) is default


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "enabled", "tru"])
def test_env_bool_rejects_other_values(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=VAR) as excinfo:
        env_bool(VAR, default=False)
    assert "not a boolean" in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# env_int
# ---------------------------------------------------------------------------------------------


def test_env_int_parses_and_defaults(monkeypatch):
    monkeypatch.setenv(VAR, " 42 ")
    assert env_int(VAR, default=7) == 42
    monkeypatch.setenv(VAR, "0")
    assert env_int(VAR, default=7) == 0
    monkeypatch.delenv(VAR)
    assert env_int(VAR, default=7) == 7


@pytest.mark.parametrize("raw", ["ten", "1.5", "12abc", "1e3"])
def test_env_int_rejects_non_numbers(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{VAR}.*not a whole number"):
        env_int(VAR, default=1)


def test_env_int_rejects_below_minimum(monkeypatch):
    monkeypatch.setenv(VAR, "-1")
    with pytest.raises(ImproperlyConfigured, match=f"{VAR}=-1 must be at least 0"):
        env_int(VAR, default=1)
    monkeypatch.setenv(VAR, "4")
    with pytest.raises(ImproperlyConfigured, match="at least 5"):
        env_int(VAR, default=10, minimum=5)
    monkeypatch.setenv(VAR, "-3")
    assert env_int(VAR, default=0, minimum=-5) == -3


# ---------------------------------------------------------------------------------------------
# env_list
# ---------------------------------------------------------------------------------------------


def test_env_list_splits_and_strips(monkeypatch):
    monkeypatch.setenv(VAR, "a.example.com, b.example.com ,c")
    assert env_list(VAR, default=[]) == ["a.example.com", "b.example.com", "c"]
    monkeypatch.setenv(VAR, "single")
    assert env_list(VAR, default=[]) == ["single"]


def test_env_list_default_is_a_copy(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    default = ["x"]
    result = env_list(VAR, default=default)
    assert result == ["x"]
    assert result is not default


@pytest.mark.parametrize("raw", ["a,,b", "a,", ",a", "a, ,b"])
def test_env_list_rejects_empty_entry(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{VAR}.*empty entry"):
        env_list(VAR, default=[])


# ---------------------------------------------------------------------------------------------
# env_path
# ---------------------------------------------------------------------------------------------


def test_env_path_absolute_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv(VAR, str(tmp_path / "data"))
    assert env_path(VAR, default=Path("/unused")) == tmp_path / "data"
    monkeypatch.delenv(VAR)
    assert env_path(VAR, default=tmp_path) == tmp_path


def test_env_path_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(VAR, "~/promo")
    assert env_path(VAR, default=Path("/unused")) == tmp_path / "promo"


@pytest.mark.parametrize("raw", ["var", "./var", "../elsewhere/var"])
def test_env_path_rejects_relative(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{VAR}.*absolute path"):
        env_path(VAR, default=Path("/unused"))


# ---------------------------------------------------------------------------------------------
# env_url (DATABASE_URL)
# ---------------------------------------------------------------------------------------------


def test_env_url_postgres(monkeypatch):
    monkeypatch.setenv(VAR, "postgres://u:p@h:5432/db")
    config = env_url(VAR)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "db"
    assert config["USER"] == "u"
    assert config["PASSWORD"] == "p"
    assert config["HOST"] == "h"
    assert config["PORT"] == 5432


@pytest.mark.parametrize("scheme", ["postgresql", "pgsql"])
def test_env_url_postgres_aliases(monkeypatch, scheme):
    monkeypatch.setenv(VAR, f"{scheme}://u@h/db")
    config = env_url(VAR)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "db"


def test_env_url_sqlite_absolute_path(monkeypatch):
    monkeypatch.setenv(VAR, "sqlite:////abs/path")
    config = env_url(VAR)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "/abs/path"


def test_env_url_default_and_required(monkeypatch, tmp_path):
    monkeypatch.delenv(VAR, raising=False)
    config = env_url(VAR, default=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert config["NAME"] == str(tmp_path / "db.sqlite3")
    with pytest.raises(ImproperlyConfigured, match=f"{VAR} environment variable is required"):
        env_url(VAR)


@pytest.mark.parametrize(
    "raw",
    [
        f"mysql://u:{PASSWORD}@h:3306/db",
        f"oracle://u:{PASSWORD}@h/db",
        "garbage",
        "",
        "localhost:5432/db",
    ],
)
def test_env_url_rejects_unsupported(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=VAR) as excinfo:
        env_url(VAR)
    assert PASSWORD not in str(excinfo.value)


@pytest.mark.parametrize(
    "raw",
    [
        f"postgres://u:{PASSWORD}@h:5432",
        f"postgres://u:{PASSWORD}@h:5432/",
        f"postgresql://u:{PASSWORD}@h",
    ],
)
def test_env_url_postgres_requires_database_name(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{VAR} must name a database") as excinfo:
        env_url(VAR)
    assert PASSWORD not in str(excinfo.value)


def test_env_url_malformed_port_rejected_without_password(monkeypatch):
    monkeypatch.setenv(VAR, f"postgres://u:{PASSWORD}@h:notaport/db")
    with pytest.raises(ImproperlyConfigured, match=f"{VAR} is malformed") as excinfo:
        env_url(VAR)
    assert PASSWORD not in str(excinfo.value)


def test_env_url_malformed_password_not_echoed(monkeypatch):
    # A base64-style password with an unescaped '/' makes urllib read "u:<pw>" as host:port.
    monkeypatch.setenv(VAR, f"postgres://u:{PASSWORD}/x@h:5432/db")
    with pytest.raises(ImproperlyConfigured, match=VAR) as excinfo:
        env_url(VAR)
    assert PASSWORD not in str(excinfo.value)


@pytest.mark.parametrize(
    "reader",
    [env_url, env_broker_url],
    ids=["env_url", "env_broker_url"],
)
def test_url_with_scheme_typo_does_not_echo_password(monkeypatch, reader):
    monkeypatch.setenv(VAR, f"postgres:/u:{PASSWORD}@h/db")  # one slash missing
    with pytest.raises(ImproperlyConfigured, match=VAR) as excinfo:
        reader(VAR)
    assert PASSWORD not in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# env_broker_url (CELERY_BROKER_URL)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["redis://127.0.0.1:6379/0", "rediss://u:pw@redis.example.com:6380/1", "memory://"],
)
def test_env_broker_url_accepts_redis(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    assert env_broker_url(VAR) == raw


def test_env_broker_url_unset_is_none(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    assert env_broker_url(VAR) is None
    monkeypatch.setenv(VAR, "  ")
    assert env_broker_url(VAR) is None


@pytest.mark.parametrize(
    "raw",
    [f"amqp://guest:{PASSWORD}@rabbit:5672//", "sqs://", "localhost:6379"],
)
def test_env_broker_url_rejects_other_schemes(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{VAR} must be a redis:// URL") as excinfo:
        env_broker_url(VAR)
    assert PASSWORD not in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# env_email_url (EMAIL_URL)
# ---------------------------------------------------------------------------------------------


def test_env_email_url_smtp_tls(monkeypatch):
    monkeypatch.setenv(VAR, "smtp+tls://user:pw@host:587")
    config = env_email_url(VAR, default="consolemail://")
    assert config["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert config["EMAIL_USE_TLS"] is True
    assert "EMAIL_USE_SSL" not in config
    assert config["EMAIL_HOST"] == "host"
    assert config["EMAIL_PORT"] == 587
    assert config["EMAIL_HOST_USER"] == "user"
    assert config["EMAIL_HOST_PASSWORD"] == "pw"


def test_env_email_url_smtp_ssl(monkeypatch):
    monkeypatch.setenv(VAR, "smtp+ssl://user:pw@host:465")
    config = env_email_url(VAR, default="consolemail://")
    assert config["EMAIL_USE_SSL"] is True
    assert "EMAIL_USE_TLS" not in config


def test_env_email_url_console(monkeypatch):
    monkeypatch.setenv(VAR, "consolemail://")
    assert env_email_url(VAR, default="smtp://localhost:25") == {
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"
    }


def test_env_email_url_default_when_unset(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    config = env_email_url(VAR, default="consolemail://")
    assert config["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"


@pytest.mark.parametrize(
    "raw",
    [f"foo://user:{PASSWORD}@host:25", "carrierpigeon://", f"smtp://u:{PASSWORD}@host:notaport"],
)
def test_env_email_url_rejects_unknown_or_malformed(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=VAR) as excinfo:
        env_email_url(VAR, default="consolemail://")
    assert PASSWORD not in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# Whole settings modules, each in a fresh interpreter
# ---------------------------------------------------------------------------------------------

# Every variable the settings read, so the developer's shell cannot leak into these tests.
_SETTINGS_VARIABLES = (
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    "PROMO_TEST_TMP",
    "DATABASE_URL",
    "DATABASE_CONN_MAX_AGE",
    "CELERY_BROKER_URL",
    "CELERY_TASK_SOFT_TIME_LIMIT",
    "CELERY_TASK_TIME_LIMIT",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "ADMIN_URL",
    "EMAIL_URL",
    "DEFAULT_FROM_EMAIL",
    "LOG_LEVEL",
    "STATIC_ROOT",
    "MEDIA_ROOT",
    "UPLOAD_ROOT",
    "MODEL_ARTIFACT_ROOT",
    "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "FILE_UPLOAD_MAX_MEMORY_SIZE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
)

_DUMP_SETTINGS = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    "CELERY_TASK_ALWAYS_EAGER": settings.CELERY_TASK_ALWAYS_EAGER,
    "MODEL_ARTIFACT_ROOT": str(settings.MODEL_ARTIFACT_ROOT),
    "UPLOAD_ROOT": str(settings.UPLOAD_ROOT),
    "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    "STATIC_ROOT": str(settings.STATIC_ROOT),
}))
"""
_LOAD_SETTINGS = "import django; from django.conf import settings; settings.DEBUG"


def _clean_env(var_dir: Path, settings_module: str | None = None, **variables: str) -> dict:
    environment = dict(os.environ)
    for name in _SETTINGS_VARIABLES:
        environment.pop(name, None)
    environment["PROMO_VAR_DIR"] = str(var_dir)
    if settings_module is not None:
        environment["DJANGO_SETTINGS_MODULE"] = settings_module
    environment.update(variables)
    return environment


def _run(args: list[str], environment: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _dump(environment: dict) -> dict:
    result = _run(["-c", _DUMP_SETTINGS], environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _production_env(var_dir: Path, **overrides: str | None) -> dict:
    environment = _clean_env(
        var_dir,
        "promo_portal.settings.production",
        SECRET_KEY=secrets.token_urlsafe(64),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="portal.example.com",
    )
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def test_local_settings_with_nothing_set(tmp_path):
    var_dir = tmp_path / "var"
    environment = _clean_env(var_dir, "promo_portal.settings.local")

    first = _dump(environment)
    assert first["ENGINE"] == "django.db.backends.sqlite3"
    assert first["NAME"] == str(var_dir / "promo_portal.sqlite3")
    assert first["DEBUG"] is True
    assert first["CELERY_BROKER_URL"] == "memory://"
    assert first["CELERY_TASK_ALWAYS_EAGER"] is True
    for name in ("MODEL_ARTIFACT_ROOT", "UPLOAD_ROOT", "MEDIA_ROOT", "STATIC_ROOT"):
        assert Path(first[name]).is_relative_to(var_dir), (name, first[name])

    key_file = var_dir / "secret_key"
    assert key_file.read_text().strip() == first["SECRET_KEY"]
    assert len(first["SECRET_KEY"]) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600

    second = _dump(environment)
    assert second["SECRET_KEY"] == first["SECRET_KEY"]


def test_local_settings_with_broker_are_not_eager(tmp_path):
    environment = _clean_env(
        tmp_path, "promo_portal.settings.local", CELERY_BROKER_URL="redis://127.0.0.1:6379/0"
    )
    values = _dump(environment)
    assert values["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert values["CELERY_TASK_ALWAYS_EAGER"] is False


def test_local_settings_reject_bad_boolean(tmp_path):
    environment = _clean_env(tmp_path, "promo_portal.settings.local", DEBUG="maybe")
    result = _run(["-c", _LOAD_SETTINGS], environment)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY environment variable is required"),
        ({"SECRET_KEY": "too-short-but-quite-random-0123"}, "SECRET_KEY must be at least 50"),
        ({"SECRET_KEY": "django-insecure-" + "x1y2z3" * 10}, "SECRET_KEY must be at least 50"),
        ({"DEBUG": "true"}, "DEBUG must be off"),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS is required"),
        ({"CELERY_BROKER_URL": None}, "CELERY_BROKER_URL is required"),
        ({"DATABASE_URL": None}, "DATABASE_URL environment variable is required"),
    ],
    ids=[
        "no-secret-key",
        "short-secret-key",
        "insecure-secret-key",
        "debug-on",
        "no-allowed-hosts",
        "no-broker",
        "no-database-url",
    ],
)
def test_production_settings_refuse_incomplete_environment(tmp_path, overrides, expected):
    environment = _production_env(tmp_path, **overrides)
    result = _run(["-c", _LOAD_SETTINGS], environment)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert expected in result.stderr
    secret_key = environment.get("SECRET_KEY")
    if secret_key:
        assert secret_key not in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_production_settings_pass_check_deploy(tmp_path):
    environment = _production_env(tmp_path)
    result = _run(
        [str(REPO_ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        environment,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output
    assert "no issues" in output
