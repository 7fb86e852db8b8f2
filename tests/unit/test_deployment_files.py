"""The deployment files agree with the code: docker-compose.yml, .env.example, docker/Dockerfile.

Docker is not needed: the files are parsed and compared with what the settings read, the Celery
queues the app declares and the paths the image sets. No database either.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

import promo_portal.settings as settings_package

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SETTINGS_DIR = REPO / "promo_portal" / "settings"
# Every module that reads settings from the environment ...
SETTINGS_SOURCES = [*sorted(SETTINGS_DIR.glob("*.py")), REPO / "promo_portal" / "env.py"]
# ... and the ones production runs (local.py and test.py are for checkouts and the test suite).
PRODUCTION_SOURCES = [SETTINGS_DIR / "base.py", SETTINGS_DIR / "production.py"]

SERVICES = {"postgres", "redis", "web", "worker", "worker-gpu", "beat", "flower"}
APP_SERVICES = {"web", "worker", "worker-gpu", "beat", "flower"}
MUST_HAVE_HEALTHCHECK = {"postgres", "redis", "web"}
# Variables of the postgres container, not of Django.
CONTAINER_VARIABLES = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
PATH_VARIABLES = ("MEDIA_ROOT", "UPLOAD_ROOT", "MODEL_ARTIFACT_ROOT")

_READERS = r"env(?:_bool|_int|_list|_path|_url|_broker_url|_email_url)?"
_ENV_READ = re.compile(
    rf"""(?:\b{_READERS}|os\.environ\.get|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    rf"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)
_ACTIVE_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
_DOCUMENTED_LINE = re.compile(r"^#\s?([A-Z][A-Z0-9_]*)=(\S*)$")


# --- Readers -----------------------------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def _services() -> dict[str, dict]:
    return _compose()["services"]


def _settings_variables(sources: list[Path] = SETTINGS_SOURCES) -> set[str]:
    """Every environment variable name these modules read (all settings modules by default)."""
    names: set[str] = set()
    for path in sources:
        for match in _ENV_READ.finditer(path.read_text(encoding="utf-8")):
            names.add(match.group(1) or match.group(2))
    return names


def _env_example() -> tuple[dict[str, str], set[str]]:
    """(NAME -> value for set lines, names only documented in a commented-out NAME=value line)."""
    active: dict[str, str] = {}
    documented: set[str] = set()
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        if match := _DOCUMENTED_LINE.match(line):
            documented.add(match.group(1))
            continue
        if not line.strip() or line.startswith("#"):
            continue
        match = _ACTIVE_LINE.match(line)
        assert match, f".env.example line {number} is not NAME=value: {line!r}"
        name, value = match.groups()
        assert name not in active, f".env.example sets {name} twice"
        active[name] = value
    return active, documented


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _celery_subcommand(tokens: list[str]) -> str | None:
    """'worker', 'beat', 'flower' ... for `celery -A app <sub> ...`, else None."""
    if not tokens or Path(tokens[0]).name != "celery":
        return None
    rest = tokens[1:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in {"-A", "--app", "-b", "--broker", "--result-backend", "--config", "--workdir"}:
            rest.pop(0)
    return rest[0] if rest else None


def _queues(tokens: list[str]) -> set[str]:
    """The queues a `celery worker` command consumes (-Q/--queues); empty when not given."""
    queues: set[str] = set()
    for index, token in enumerate(tokens):
        value = None
        if token in {"-Q", "--queues"} and index + 1 < len(tokens):
            value = tokens[index + 1]
        elif token.startswith("--queues="):
            value = token.split("=", 1)[1]
        elif token.startswith("-Q") and len(token) > 2:
            value = token[2:]
        if value is not None:
            queues |= {queue.strip() for queue in value.split(",") if queue.strip()}
    return queues


def _workers() -> dict[str, set[str]]:
    workers = {}
    for name, service in _services().items():
        tokens = _command(service)
        if _celery_subcommand(tokens) == "worker":
            workers[name] = _queues(tokens)
    return workers


def _depends_on(service: dict) -> dict[str, dict]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):  # short form: no condition, i.e. only "started"
        return {name: {"condition": "service_started"} for name in depends}
    return depends


def _env_files(service: dict) -> list[str]:
    env_file = service.get("env_file") or []
    if isinstance(env_file, str):
        env_file = [env_file]
    return [entry["path"] if isinstance(entry, dict) else entry for entry in env_file]


def _environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def _mounts(service: dict) -> dict[str, str]:
    """container path -> source (a named volume or a host path)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume.get("source", "")
        else:
            source, target = volume.split(":")[:2]
            mounts[target] = source
    return mounts


def _is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith(("/", ".", "~", "$"))


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comment lines dropped."""
    instructions, buffer = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            keyword, _, arguments = buffer.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
        buffer = ""
    return instructions


def _runtime_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    starts = [index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "docker/Dockerfile has no FROM"
    return instructions[starts[-1] :]


def _dockerfile_env() -> dict[str, str]:
    values = {}
    for keyword, arguments in _runtime_stage():
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                values[name] = value
    return values


def _load_production(environ: dict[str, str]):
    """Import promo_portal.settings.production afresh under exactly these settings variables.

    Raises ImproperlyConfigured as the real start-up would. sys.modules, the settings package and
    os.environ are restored afterwards, so Django's configured settings are untouched.
    """
    modules = ("base", "production")
    saved_modules = {
        name: sys.modules.get(f"{settings_package.__name__}.{name}") for name in modules
    }
    saved_attributes = {name: getattr(settings_package, name, None) for name in modules}
    try:
        with mock.patch.dict(os.environ):
            for name in _settings_variables() | CONTAINER_VARIABLES:
                os.environ.pop(name, None)
            os.environ.update(environ)
            for name in modules:
                sys.modules.pop(f"{settings_package.__name__}.{name}", None)
                if hasattr(settings_package, name):
                    delattr(settings_package, name)
            return importlib.import_module(f"{settings_package.__name__}.production")
    finally:
        for name in modules:
            key = f"{settings_package.__name__}.{name}"
            if saved_modules[name] is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = saved_modules[name]
            if saved_attributes[name] is None:
                if hasattr(settings_package, name):
                    delattr(settings_package, name)
            else:
                setattr(settings_package, name, saved_attributes[name])


def _example_environ(**overrides: str) -> dict[str, str]:
    active, _ = _env_example()
    environ = {name: value for name, value in active.items() if value != ""}
    environ.update(overrides)
    return environ


def _secret_key() -> str:
    return secrets.token_urlsafe(64)


# --- docker-compose.yml -----------------------------------------------------------------------


def test_compose_declares_the_seven_services():
    assert set(_services()) == SERVICES


def test_backing_services_and_web_have_healthchecks():
    services = _services()
    for name in MUST_HAVE_HEALTHCHECK:
        healthcheck = services[name].get("healthcheck") or {}
        test = healthcheck.get("test")
        assert test, f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
        assert test not in ("NONE", ["NONE"]), f"{name} disables its healthcheck"


def test_every_service_is_checked_or_waits_for_healthy_dependencies():
    services = _services()
    for name, service in services.items():
        depends = _depends_on(service)
        assert "healthcheck" in service or depends, f"{name}: no healthcheck and no dependencies"
        for dependency, options in depends.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert options.get("condition") == "service_healthy", (
                f"{name} starts without waiting for {dependency} to be healthy"
            )
            assert services[dependency].get("healthcheck"), (
                f"{name} waits for {dependency} to be healthy, but {dependency} has no healthcheck"
            )


def test_app_services_wait_for_postgres_and_redis():
    services = _services()
    for name in APP_SERVICES:
        depends = _depends_on(services[name])
        assert {"postgres", "redis"} <= set(depends), f"{name} must wait for postgres and redis"


def test_workers_and_beat_wait_for_the_migrating_web_service():
    services = _services()
    web_command = " ".join(_command(services["web"]))
    assert "migrate" in web_command, "web must apply migrations on start"
    assert web_command.index("migrate") < web_command.index("gunicorn promo_portal.wsgi")
    for name in ("worker", "worker-gpu", "beat"):
        assert "web" in _depends_on(services[name]), f"{name} may start before migrations ran"


def test_app_services_use_production_settings_and_the_env_file():
    services = _services()
    for name in APP_SERVICES:
        service = services[name]
        assert ".env" in _env_files(service), f"{name} does not read .env"
        settings_module = _environment(service).get("DJANGO_SETTINGS_MODULE")
        assert settings_module == "promo_portal.settings.production", name
        assert importlib.util.find_spec(settings_module), f"{name}: no module {settings_module}"


def test_web_healthcheck_hits_the_health_view_on_an_allowed_host():
    from django.urls import resolve

    test = _services()["web"]["healthcheck"]["test"]
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(test) if isinstance(test, list) else test)
    assert urls, "web healthcheck requests no URL"
    url = urlsplit(urls[0])
    assert url.scheme == "http", "the healthcheck talks to gunicorn directly, without TLS"
    assert url.port == 8000
    assert resolve(url.path).url_name == "health"

    production = _load_production(_example_environ(SECRET_KEY=_secret_key()))
    assert url.hostname in production.ALLOWED_HOSTS, (
        f"the healthcheck's host {url.hostname} is not in ALLOWED_HOSTS of .env.example"
    )
    if production.SECURE_SSL_REDIRECT:
        path = url.path.lstrip("/")
        assert any(re.search(pattern, path) for pattern in production.SECURE_REDIRECT_EXEMPT), (
            "the healthcheck would be redirected to HTTPS"
        )


def test_gpu_worker_serves_only_training_and_reserves_an_nvidia_gpu():
    service = _services()["worker-gpu"]
    assert _workers()["worker-gpu"] == {"training"}
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    nvidia = [device for device in devices if device.get("driver") == "nvidia"]
    assert nvidia, "worker-gpu reserves no NVIDIA device"
    assert "gpu" in nvidia[0].get("capabilities", [])
    assert nvidia[0].get("count") == 1 or nvidia[0].get("device_ids"), "reserve one GPU"
    assert service["build"]["args"]["TF_VARIANT"] == "gpu"


def test_cpu_services_use_the_cpu_image_and_reserve_no_gpu():
    services = _services()
    for name in APP_SERVICES - {"worker-gpu"}:
        service = services[name]
        assert service["build"]["args"]["TF_VARIANT"] == "cpu", name
        assert service.get("image") != services["worker-gpu"].get("image"), name
        assert "devices" not in (service.get("deploy") or {}).get("resources", {}).get(
            "reservations", {}
        ), name


def test_workers_cover_exactly_the_queues_the_celery_app_declares():
    from django.conf import settings

    from promo_portal.celery import app

    declared = {queue.name for queue in app.conf.task_queues}
    workers = _workers()
    assert {"worker", "worker-gpu"} <= set(workers)
    for name, queues in workers.items():
        assert queues, f"{name} serves every queue; name them with -Q"
        assert queues <= declared, f"{name} serves undeclared queues {queues - declared}"
    served = set().union(*workers.values())
    assert served == declared, f"no worker serves {declared - served}"
    assert workers["worker"] == declared - {"training"}, "the cpu worker serves default and scoring"
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= served


def test_beat_and_flower_commands():
    from django.conf import settings

    services = _services()
    beat = _command(services["beat"])
    assert _celery_subcommand(beat) == "beat"
    # The schedule must live in the database: either the command or the settings choose it.
    scheduler = settings.CELERY_BEAT_SCHEDULER
    for index, token in enumerate(beat):
        if token in {"-S", "--scheduler"}:
            scheduler = beat[index + 1]
        elif token.startswith("--scheduler="):
            scheduler = token.split("=", 1)[1]
    assert scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    flower = services["flower"]
    assert _celery_subcommand(_command(flower)) == "flower"
    published = [str(port) for port in flower.get("ports", [])]
    assert any(port.endswith(":5555") for port in published), "flower must publish port 5555"


def test_named_volumes_are_declared_and_used():
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    used = {
        source
        for service in compose["services"].values()
        for source in _mounts(service).values()
        if _is_named_volume(source)
    }
    assert used <= declared, f"undeclared volumes {used - declared}"
    assert declared <= used, f"declared but unused volumes {declared - used}"
    assert "/var/lib/postgresql/data" in _mounts(compose["services"]["postgres"])


def test_web_and_workers_share_the_upload_media_and_model_volumes():
    services = _services()
    sharing = ("web", "worker", "worker-gpu")
    for variable in PATH_VARIABLES:
        sources = set()
        for name in sharing:
            path = _environment(services[name]).get(variable)
            assert path, f"{name} does not set {variable}, the path its volume is mounted on"
            source = _mounts(services[name]).get(path)
            assert source and _is_named_volume(source), f"{name}: no named volume at {variable}"
            sources.add(source)
        assert len(sources) == 1, f"{variable} is on different volumes: {sources}"


def test_compose_paths_match_the_image():
    image_env = _dockerfile_env()
    for name in APP_SERVICES:
        environment = _environment(_services()[name])
        for variable in ("PROMO_VAR_DIR", *PATH_VARIABLES):
            if variable in environment:
                assert environment[variable] == image_env.get(variable), (
                    f"{name} sets {variable}={environment[variable]}, "
                    f"the image {image_env.get(variable)}"
                )


# --- .env.example ----------------------------------------------------------------------------


def test_settings_variables_are_found():
    # Guards the regex below: if it stopped matching, the next tests would pass vacuously.
    expected = {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "ALLOWED_HOSTS"}
    assert _settings_variables(PRODUCTION_SOURCES) >= expected


def test_env_example_names_only_variables_the_settings_read():
    active, documented = _env_example()
    unknown = (set(active) | documented) - _settings_variables() - CONTAINER_VARIABLES
    assert not unknown, f".env.example names variables nothing reads: {sorted(unknown)}"


def test_env_example_documents_every_variable_production_reads():
    active, documented = _env_example()
    missing = _settings_variables(PRODUCTION_SOURCES) - set(active) - documented
    assert not missing, f".env.example does not mention {sorted(missing)}"
    assert set(active) >= CONTAINER_VARIABLES


def test_env_example_values_are_plain():
    active, _ = _env_example()
    for name, value in active.items():
        assert not re.search(r"\s|[\"'#]", value), f"{name}: quote-, space- or comment-free only"


def test_database_url_matches_the_postgres_container():
    active, _ = _env_example()
    url = urlsplit(active["DATABASE_URL"])
    assert url.hostname == "postgres" and "postgres" in _services()
    assert (url.port or 5432) == 5432
    assert url.username == active["POSTGRES_USER"]
    assert url.password == active["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == active["POSTGRES_DB"]
    broker = urlsplit(active["CELERY_BROKER_URL"])
    assert broker.hostname == "redis" and "redis" in _services()


def test_production_starts_with_the_example_and_a_generated_secret_key():
    production = _load_production(_example_environ(SECRET_KEY=_secret_key()))
    assert production.DEBUG is False
    assert production.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert production.CELERY_TASK_ALWAYS_EAGER is False


def test_the_example_secret_key_is_a_placeholder_production_rejects():
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        _load_production(_example_environ())


@functools.cache
def _required_by_production() -> frozenset[str]:
    """The settings variables without which production settings refuse to load."""
    full = _example_environ(SECRET_KEY=_secret_key())
    required = set()
    for name in sorted(_settings_variables()):
        environ = {key: value for key, value in full.items() if key != name}
        try:
            _load_production(environ)
        except ImproperlyConfigured:
            required.add(name)
    return frozenset(required)


def test_every_variable_production_requires_is_in_env_example():
    active, _ = _env_example()
    required = _required_by_production()
    assert required, "production requires nothing? the probe is broken"
    assert required <= set(active), f"required but absent: {sorted(required - set(active))}"
    empty = {name for name in required if active[name] == ""} - {"SECRET_KEY"}
    assert not empty, f"required but left empty: {sorted(empty)}"

    docstring = (REPO / "promo_portal" / "settings" / "production.py").read_text(encoding="utf-8")
    listed = re.search(r"Required:\s*([A-Z0-9_,\s]+?)\.", docstring)
    assert listed, "production.py no longer lists its required variables"
    documented = {name.strip() for name in listed.group(1).split(",")}
    assert documented == required, "production.py's docstring disagrees with what it requires"


# --- docker/Dockerfile and .dockerignore -------------------------------------------------------


def test_dockerfile_builds_both_variants_and_runs_unprivileged():
    instructions = _dockerfile_instructions()
    arguments = {args.split("=")[0] for keyword, args in instructions if keyword == "ARG"}
    assert "TF_VARIANT" in arguments
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert '".[$extras]"' in text and 'extras="gpu,ops"' in text and 'extras="cpu,ops"' in text
    assert "npm ci" in text

    runtime = _runtime_stage()
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    env = _dockerfile_env()
    assert env.get("DJANGO_SETTINGS_MODULE") == "promo_portal.settings.production"
    for variable in ("PROMO_VAR_DIR", *PATH_VARIABLES, "STATIC_ROOT"):
        assert env.get(variable, "").startswith("/"), f"the image sets no absolute {variable}"
    collect = [args for keyword, args in runtime if keyword == "RUN" and "collectstatic" in args]
    assert collect, "static files are not collected at build time"


def test_build_time_collectstatic_provides_every_variable_production_requires():
    collect = next(
        args for keyword, args in _runtime_stage() if keyword == "RUN" and "collectstatic" in args
    )
    assigned = set(re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", collect))
    required = _required_by_production()
    assert required <= assigned
    # The throwaway values live in that one command only: never in an ENV or ARG of any stage.
    persisted = {
        re.split(r"[=\s]", args, maxsplit=1)[0]
        for keyword, args in _dockerfile_instructions()
        if keyword == "ARG"
    } | {
        name
        for keyword, args in _dockerfile_instructions()
        if keyword == "ENV"
        for name in re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", args)
    }
    assert not required & persisted, f"baked into the image: {sorted(required & persisted)}"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", "node_modules", "var", ".git"} <= patterns


def test_compose_builds_from_the_dockerfile():
    for name in APP_SERVICES:
        build = _services()[name]["build"]
        context = REPO / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.resolve() == REPO, f"{name} builds from another context"
        assert dockerfile.resolve() == DOCKERFILE.resolve(), name


def test_the_web_processes_never_load_tensorflow_or_scikit_learn():
    """Gunicorn workers import every view and API module; the model code they reach must leave
    Keras (TensorFlow) and scikit-learn to the Celery workers (about 600 MiB per process)."""
    code = (
        "import sys, django; django.setup(); "
        "import promo_portal.wsgi, promo_portal.urls, promo_portal.api_urls; "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'keras', 'tensorflow', 'sklearn', 'jax'}); print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "promo_portal.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
