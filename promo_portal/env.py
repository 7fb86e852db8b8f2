"""Strict readers for settings from the environment.

django-environ does the parsing; these wrappers add what it leaves loose: a boolean must be one
of a few spellings, a number must be a number, a URL must have a scheme we support, and every
failure names the variable in an ``ImproperlyConfigured`` error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "sqlite"}
_BROKER_SCHEMES = {"redis", "rediss", "memory"}
_UNSET = object()


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env(name: str, *, default: Any = _UNSET) -> Any:
    """A string variable; without a default it is required."""
    value = _raw(name)
    if value is None:
        if default is _UNSET:
            raise ImproperlyConfigured(f"The {name} environment variable is required.")
        return default
    return value


def env_bool(name: str, *, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of {sorted(_TRUE | _FALSE)}."
    )


def env_int(name: str, *, default: int, minimum: int = 0) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


def env_list(name: str, *, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(item == "" for item in items):
        raise ImproperlyConfigured(
            f"{name}={value!r} has an empty entry; separate values by commas."
        )
    return items


def env_path(name: str, *, default: Path) -> Path:
    value = _raw(name)
    path = Path(value).expanduser() if value is not None else Path(default)
    if not path.is_absolute():
        raise ImproperlyConfigured(f"{name}={value!r} must be an absolute path.")
    return path


def env_url(name: str, *, default: str | None = None) -> dict[str, Any]:
    """DATABASE_URL in dj-database-url form, as Django's DATABASES entry."""
    value = _raw(name) or default
    if value is None:
        raise ImproperlyConfigured(f"The {name} environment variable is required.")
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in _DATABASE_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} must be a postgres:// or sqlite:/// URL, not {_redact(value)!r}."
        )
    try:
        config = _env.db_url_config(value)
    except Exception as error:  # django-environ raises several kinds on malformed URLs
        raise ImproperlyConfigured(_malformed(name, error)) from None
    if config["ENGINE"] == "django.db.backends.postgresql" and not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} must name a database: postgres://HOST:PORT/NAME.")
    return config


def env_broker_url(name: str) -> str | None:
    value = _raw(name)
    if value is None:
        return None
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in _BROKER_SCHEMES:
        raise ImproperlyConfigured(f"{name} must be a redis:// URL, not {_redact(value)!r}.")
    return value


def _redact(url: str) -> str:
    """The URL without its credentials, even when its scheme is mistyped ("postgres:/u:pw@h")."""
    if "@" not in url:
        return url
    match = re.match(r"^([a-z][a-z0-9+.-]*:/*)?", url, flags=re.IGNORECASE)
    prefix = match.group(1) or "" if match else ""
    return f"{prefix}***@{url.rsplit('@', 1)[1]}"


def _malformed(name: str, error: Exception) -> str:
    # The parser's own message can quote part of a password (a "/" in it reads as a port).
    return (
        f"{name} is malformed ({type(error).__name__}); percent-encode / ? # @ : in the user "
        "name and password."
    )


def env_email_url(name: str, *, default: str) -> dict[str, Any]:
    """EMAIL_URL (smtp://, smtp+tls://, smtp+ssl://, consolemail://) as Django EMAIL_* settings."""
    value = _raw(name) or default
    try:
        config = _env.email_url_config(value)
    except Exception as error:
        raise ImproperlyConfigured(_malformed(name, error)) from None
    if "EMAIL_BACKEND" not in config:
        raise ImproperlyConfigured(f"{name} has an unknown scheme: {_redact(value)!r}.")
    return {key: val for key, val in config.items() if val not in (None, "")}


def database_url(settings_dict: dict[str, Any]) -> str:
    """The DATABASE_URL for a Django DATABASES entry (PostgreSQL), e.g. to hand to a worker."""
    from urllib.parse import quote

    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
