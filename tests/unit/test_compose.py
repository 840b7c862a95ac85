"""docker-compose.yml and the Dockerfiles, checked by parsing (no Docker engine needed).

Every process compose or an image starts is resolved against the real ``mmlw`` click
command tree, so renaming a subcommand or an option breaks this test, not a deployment.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from mmlw.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MLFLOW_UI_FILE = ROOT / "docker-compose.mlflow-ui.yml"  # override that publishes the MLflow UI
MLFLOW_ENTRYPOINT = "mlflow-auth-entrypoint"  # docker/mlflow-auth-entrypoint.py in the image
EXAMPLE_ENV = ROOT / "configs" / "compose.example.env"
DOCKERIGNORE = ROOT / ".dockerignore"

INFRA_SERVICES = {"rabbitmq", "postgres", "mlflow"}
APP_SERVICES = {"migrate", "api", "worker", "scorer", "ingest", "simulator", "beat"}
LONG_RUNNING_APP_SERVICES = {"api", "worker", "scorer", "ingest", "beat"}
SECRET_VARIABLES = {
    "POSTGRES_PASSWORD",
    "RABBITMQ_PASSWORD",
    "RABBITMQ_PUBLISHER_PASSWORD",
    "RABBITMQ_INGEST_PASSWORD",
    "RABBITMQ_WORKER_PASSWORD",
    "RABBITMQ_API_PASSWORD",
    "MMLW_API_KEYS",
    "MMLW_DASHBOARD_API_KEY",
    "MMLW_DASHBOARD_SECRET_KEY",
    "MMLW_MODEL_SIGNING_KEY",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_MMLW_PASSWORD",
}
SECRET_KEY_PATTERN = re.compile(r"PASS|SECRET|TOKEN|KEY", re.IGNORECASE)
REQUIRED_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}")
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<password>[^@\s]+)@")
REFERENCE = re.compile(
    r"\$\$"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


# --------------------------------------------------------------------------- helpers
class MissingVariableError(Exception):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Substitute ``${VAR}``-style references the way docker compose does."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        is_set = name in env
        is_filled = bool(env.get(name))
        if op in (":-", "-"):
            return env[name] if (is_filled if op == ":-" else is_set) else arg
        if op in (":?", "?"):
            if not (is_filled if op == ":?" else is_set):
                raise MissingVariableError(f"{name}: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if (is_filled if op == ":+" else is_set) else ""
        return env.get(name, "")

    return REFERENCE.sub(replace, value)


def read_example_env() -> dict[str, str]:
    values = {}
    for line in EXAMPLE_ENV.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"compose.example.env: not NAME=value: {line!r}"
        values[name.strip()] = value.strip().strip("'\"")
    return values


def filled_env() -> dict[str, str]:
    """The example env as a user would have it: every empty secret filled in."""
    env = read_example_env()
    for name, value in env.items():
        if not value:
            env[name] = (
                '["example-key-0123456789"]'
                if name == "MMLW_API_KEYS"
                else "example-secret-0123456789abcdef0123456789"
            )
    return env


def as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(token) for token in value]


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (entry.partition("=") for entry in environment)
        return {name: value for name, _, value in pairs}
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    dependencies = service.get("depends_on") or {}
    if isinstance(dependencies, list):
        return dict.fromkeys(dependencies, "service_started")
    return {
        name: (spec or {}).get("condition", "service_started")
        for name, spec in dependencies.items()
    }


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return instructions


def dockerfile_argv(value: str) -> list[str]:
    """Exec form (JSON array) or shell form of CMD / ENTRYPOINT."""
    if value.startswith("["):
        return [str(token) for token in json.loads(value)]
    return shlex.split(value)


def last(instructions: list[tuple[str, str]], keyword: str) -> str | None:
    values = [arguments for name, arguments in instructions if name == keyword]
    return values[-1] if values else None


def image_argv(dockerfile: Path) -> list[str]:
    instructions = parse_dockerfile(dockerfile)
    entrypoint, cmd = last(instructions, "ENTRYPOINT"), last(instructions, "CMD")
    return as_argv(entrypoint and dockerfile_argv(entrypoint)) + as_argv(
        cmd and dockerfile_argv(cmd)
    )


def option_names(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def skip_group_options(group: click.Group, args: list[str], path: list[str]) -> list[str]:
    """Drop the group's own options (``mmlw --verbose worker``) in front of a subcommand."""
    by_opt = {opt: param for param in group.params for opt in (*param.opts, *param.secondary_opts)}
    while args and args[0].startswith("-"):
        token = args.pop(0)
        name = token.split("=", 1)[0]
        param = by_opt.get(name)
        assert param is not None, f"`{' '.join(path)}` has no option {name}"
        takes_value = not getattr(param, "is_flag", False) and not getattr(param, "count", False)
        if takes_value and "=" not in token:
            args.pop(0)
    return args


def resolve_mmlw(argv: list[str]) -> tuple[list[str], click.Context]:
    """Command path (``["mmlw", "db", "upgrade"]``) and parsed context of what ``argv`` runs.

    Fails unless every subcommand and option exists and every value parses.
    """
    from mmlw import cli

    assert argv and argv[0] == "mmlw", f"not an mmlw command: {argv}"
    assert isinstance(cli.main, click.Group), "mmlw.cli.main must be a click.Group"
    command: click.Command = cli.main
    args, path = list(argv[1:]), ["mmlw"]
    parent: click.Context | None = None
    while isinstance(command, click.Group):
        args = skip_group_options(command, args, path)
        assert args, f"`{' '.join(path)}` needs a subcommand"
        context = click.Context(command, info_name=path[-1], parent=parent)
        subcommand = command.get_command(context, args[0])
        known = command.list_commands(context)
        assert subcommand is not None, f"`{' '.join(path)}` has no subcommand {args[0]!r} {known}"
        path.append(args.pop(0))
        parent, command = context, subcommand
    for token in args:
        if token.startswith("-"):
            name = token.split("=", 1)[0]
            assert name in option_names(command), (
                f"`{' '.join(path)}` has no option {name}; it has {sorted(option_names(command))}"
            )
    try:  # parses values too: types, choices, required options
        context = command.make_context(path[-1], list(args), parent=parent)
    except click.UsageError as error:
        pytest.fail(f"`{' '.join(argv)}`: {error.format_message()}")
    return path, context


def iter_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from iter_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_strings(item)


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line.rstrip("/") for line in lines if line and not line.startswith(("#", "!"))]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def effective_argv(service: Mapping[str, Any]) -> list[str]:
    """What the container runs: compose's entrypoint/command over the image's."""
    if "entrypoint" in service:  # compose's entrypoint also drops the image's CMD
        return [*as_argv(service["entrypoint"]), *as_argv(service.get("command"))]
    dockerfile = ROOT / service["build"]["dockerfile"] if "build" in service else None
    if "command" not in service:
        return image_argv(dockerfile) if dockerfile else []
    entrypoint = last(parse_dockerfile(dockerfile), "ENTRYPOINT") if dockerfile else None
    return [*as_argv(entrypoint and dockerfile_argv(entrypoint)), *as_argv(service["command"])]


def interpolated(argv: list[str]) -> list[str]:
    env = filled_env()
    return [interpolate(token, env) for token in argv]


def mlflow_server_argv(argv: list[str]) -> list[str]:
    """The ``mlflow server ...`` command the image's auth entrypoint runs."""
    assert argv[0] == MLFLOW_ENTRYPOINT, (
        f"the MLflow image must start through its entrypoint: {argv}"
    )
    return argv[1:]


# --------------------------------------------------------------------------- tests
def test_compose_file_parses_and_has_every_service(services: dict[str, Any]) -> None:
    assert set(services) >= INFRA_SERVICES | APP_SERVICES


def test_every_variable_is_documented_in_the_example_env() -> None:
    text = COMPOSE_FILE.read_text() + MLFLOW_UI_FILE.read_text()
    used = {m.group("name") or m.group("bare") for m in REFERENCE.finditer(text)} - {None}
    documented = set(read_example_env())
    assert used - documented == set(), "document these in configs/compose.example.env"
    assert documented - used == set(), "configs/compose.example.env documents unused variables"


def test_secrets_have_no_default_and_are_empty_in_the_example() -> None:
    text = COMPOSE_FILE.read_text()
    example = read_example_env()
    for match in REFERENCE.finditer(text):
        name = match.group("name") or match.group("bare")
        if name in SECRET_VARIABLES:
            assert match.group("op") == ":?", f"{match.group(0)} must be ${{{name}:?message}}"
    for name in SECRET_VARIABLES:
        assert example.get(name, None) == "", f"{name} must be left empty in the example env"


def test_compose_refuses_to_start_without_a_secret(services: dict[str, Any]) -> None:
    for secret in SECRET_VARIABLES:
        env = filled_env()
        del env[secret]
        values = [
            value
            for service in services.values()
            for value in [*environment_of(service).values(), *as_argv(service.get("command"))]
        ]
        with pytest.raises(MissingVariableError):
            for value in values:
                interpolate(value, env)


def test_no_plaintext_password_anywhere(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in environment_of(service).items():
            if SECRET_KEY_PATTERN.search(key):
                assert REQUIRED_REFERENCE.fullmatch(value), (
                    f"{name}.environment.{key} must be a ${{VAR:?...}} reference, not {value!r}"
                )
        for text in iter_strings(service):
            for match in URL_CREDENTIALS.finditer(text):
                assert REQUIRED_REFERENCE.fullmatch(match.group("password")), (
                    f"{name}: password in {text!r} must be a ${{VAR:?...}} reference"
                )


def test_app_services_run_in_production_against_the_compose_services(
    services: dict[str, Any],
) -> None:
    for name in APP_SERVICES | {"dashboard"}:
        env = environment_of(services[name])
        assert env["MMLW_ENVIRONMENT"] == "production", name
        if name in ("dashboard", "simulator"):  # clients: no store, MLflow or models
            assert "MMLW_MODELS__SIGNING_KEY" not in env
            assert "MMLW_DATABASE_URL" not in env and "MMLW_MLFLOW_TRACKING_URI" not in env
            with pytest.MonkeyPatch.context() as patch:
                for key, value in env.items():
                    if key.startswith("MMLW_"):
                        patch.setenv(key, interpolate(str(value), filled_env()))
                Settings()  # starts in production without the signing key
            continue
        assert "@postgres:5432/mmlw" in env["MMLW_DATABASE_URL"], name
        assert env["MMLW_DATABASE_URL"].startswith("postgresql+psycopg://"), name
        if name != "migrate":  # the store's schema only: no broker
            assert env["MMLW_BROKER__URL"].startswith("amqp://"), name
            assert "@rabbitmq:5672/" in env["MMLW_BROKER__URL"], name
        assert env["MMLW_MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                if key.startswith("MMLW_"):
                    patch.setenv(key, interpolate(str(value), filled_env()))
            settings = Settings()  # the production checks pass with the example's secrets
            assert len(settings.model_signing_key()) >= 32, name
    api_env = environment_of(services["api"])
    assert api_env["MMLW_API__HOST"] == "0.0.0.0"
    keys = json.loads(interpolate(api_env["MMLW_API__KEYS"], filled_env()))
    assert isinstance(keys, list) and keys


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_service_commands_resolve_to_real_mmlw_commands(
    services: dict[str, Any], name: str
) -> None:
    argv = interpolated(effective_argv(services[name]))
    resolve_mmlw(argv)


def test_expected_subcommands(services: dict[str, Any]) -> None:
    paths = {
        name: resolve_mmlw(interpolated(effective_argv(services[name])))[0] for name in APP_SERVICES
    }
    assert paths == {
        "migrate": ["mmlw", "db", "upgrade"],
        "api": ["mmlw", "api"],
        "worker": ["mmlw", "worker"],
        "scorer": ["mmlw", "scorer"],
        "ingest": ["mmlw", "ingest"],
        "simulator": ["mmlw", "simulate"],
        "beat": ["mmlw", "beat"],
    }
    worker_argv = interpolated(effective_argv(services["worker"]))
    queues = worker_argv[worker_argv.index("--queues") + 1]
    assert set(queues.split(",")) == {"train", "predict", "notify"}


def test_alert_mail_goes_to_the_mailpit_catcher(services: dict[str, Any]) -> None:
    env = environment_of(services["worker"])
    assert interpolate(env["MMLW_ALERTS__SMTP__HOST"], filled_env()) == "mailpit"
    assert interpolate(env["MMLW_ALERTS__SMTP__PORT"], filled_env()) == "1025"
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert any(str(p).endswith(":8025:8025") for p in services["mailpit"]["ports"])
    assert "deploy" not in services["beat"]  # exactly one beat


def test_mlflow_server_command(services: dict[str, Any]) -> None:
    mlflow = services["mlflow"]
    argv = mlflow_server_argv(interpolated(effective_argv(mlflow)))
    assert argv[:2] == ["mlflow", "server"]
    for flag in ("--serve-artifacts", "--artifacts-destination", "--backend-store-uri"):
        assert flag in argv
    store = argv[argv.index("--backend-store-uri") + 1]
    assert store.startswith("postgresql+psycopg://") and store.endswith("@postgres:5432/mlflow")
    destination = argv[argv.index("--artifacts-destination") + 1]
    assert any(str(v).endswith(f":{destination}") for v in mlflow["volumes"]), "artifact volume"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert environment_of(mlflow)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_mlflow_server_options_exist_in_installed_mlflow(services: dict[str, Any]) -> None:
    import mlflow.cli as mlflow_cli

    argv = mlflow_server_argv(interpolated(effective_argv(services["mlflow"])))
    server = mlflow_cli.cli.get_command(click.Context(mlflow_cli.cli), argv[1])
    assert server is not None
    for token in argv[2:]:
        if token.startswith("-"):
            assert token.split("=", 1)[0] in option_names(server), token
    server.make_context("server", argv[2:])


def test_mlflow_requires_a_login(services: dict[str, Any]) -> None:
    """MLflow's basic-auth app, configured by the image's entrypoint from the environment:
    anonymous requests are refused, users hold only what was granted to them."""
    from mlflow.server.auth.permissions import ALL_PERMISSIONS

    mlflow = services["mlflow"]
    argv = mlflow_server_argv(interpolated(effective_argv(mlflow)))
    assert argv[argv.index("--app-name") + 1] == "basic-auth"
    env = environment_of(mlflow)
    permission = env["MLFLOW_AUTH_DEFAULT_PERMISSION"]
    assert permission in ALL_PERMISSIONS and not ALL_PERMISSIONS[permission].can_read
    store = interpolate(env["MLFLOW_AUTH_DATABASE_URI"], filled_env())
    assert store.startswith("postgresql+psycopg://") and store.endswith("@postgres:5432/mlflow")
    assert (
        env["MLFLOW_AUTH_ADMIN_PASSWORD"]
        == "${MLFLOW_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD in .env}"
    )
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"] != env["MLFLOW_SERVICE_USERNAME"]
    dockerfile = (ROOT / mlflow["build"]["dockerfile"]).read_text()
    assert "mlflow[auth]==${MLFLOW_VERSION}" in dockerfile  # Flask-WTF, which the app needs
    assert (ROOT / "docker" / "mlflow-auth-entrypoint.py").is_file()


def test_mmlw_services_log_in_to_mlflow_as_the_service_user(services: dict[str, Any]) -> None:
    mlflow = environment_of(services["mlflow"])
    for name in APP_SERVICES - {"simulator"}:  # the simulator is a machine: the broker only
        env = environment_of(services[name])
        assert env["MMLW_MLFLOW_USERNAME"] == mlflow["MLFLOW_SERVICE_USERNAME"], name
        assert env["MMLW_MLFLOW_PASSWORD"] == mlflow["MLFLOW_SERVICE_PASSWORD"], name
        assert REQUIRED_REFERENCE.fullmatch(env["MMLW_MLFLOW_PASSWORD"]), name
    # without the login an app service refuses to start in production
    env = {
        key: interpolate(value, filled_env())
        for key, value in environment_of(services["worker"]).items()
        if key.startswith("MMLW_") and key != "MMLW_MLFLOW_PASSWORD"
    }
    with pytest.MonkeyPatch.context() as patch, pytest.raises(ValueError, match="mlflow_password"):
        for key, value in env.items():
            patch.setenv(key, value)
        patch.delenv("MMLW_MLFLOW_USERNAME")
        Settings()


def test_mlflow_is_not_published_unless_asked(services: dict[str, Any]) -> None:
    assert "ports" not in services["mlflow"], "the MLflow server stays on the compose network"
    override = yaml.safe_load(MLFLOW_UI_FILE.read_text())
    assert set(override["services"]) == {"mlflow"}
    ports = [interpolate(str(p), filled_env()) for p in override["services"]["mlflow"]["ports"]]
    assert ports == ["127.0.0.1:5000:5000"]
    # its own bind address: opening AMQP to the network (MMLW_BIND_ADDRESS) leaves it closed
    raw = override["services"]["mlflow"]["ports"]
    assert all(str(p).startswith("${MMLW_MLFLOW_BIND_ADDRESS:-127.0.0.1}:") for p in raw)


def test_postgres_creates_the_mlflow_database(services: dict[str, Any]) -> None:
    mounts = [str(volume) for volume in services["postgres"]["volumes"]]
    init = [m for m in mounts if ":/docker-entrypoint-initdb.d" in m]
    assert init, "postgres needs an init script directory"
    directory = ROOT / init[0].split(":", 1)[0]
    scripts = " ".join(p.read_text() for p in directory.iterdir() if p.suffix in {".sql", ".sh"})
    assert re.search(r"CREATE DATABASE\s+mlflow\b", scripts, re.IGNORECASE)


def test_bind_mounts_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: mount source {source} is missing"


@pytest.mark.parametrize(
    ("name", "probe"),
    [
        ("rabbitmq", "rabbitmq-diagnostics"),
        ("postgres", "pg_isready"),
        ("mlflow", "localhost:5000/health"),
        ("api", ":8000/health"),
        ("dashboard", ":8050/health"),
    ],
)
def test_healthchecks(services: dict[str, Any], name: str, probe: str) -> None:
    healthcheck = services[name].get("healthcheck")
    assert healthcheck and not healthcheck.get("disable"), f"{name} needs a healthcheck"
    test = healthcheck["test"]
    assert test[0] in {"CMD", "CMD-SHELL"}
    assert probe in " ".join(test[1:])


def test_depends_on_conditions(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
    for name in LONG_RUNNING_APP_SERVICES:
        conditions = depends_on(services[name])
        for dependency in INFRA_SERVICES:
            assert conditions.get(dependency) == "service_healthy", f"{name} -> {dependency}"
        assert conditions.get("migrate") == "service_completed_successfully", name
    assert depends_on(services["migrate"]).get("postgres") == "service_healthy"
    assert depends_on(services["mlflow"]).get("postgres") == "service_healthy"
    assert services["migrate"].get("restart", "no") == "no"


@pytest.mark.parametrize("name", ["worker", "scorer"])
def test_workers_and_scorers_can_scale(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert "container_name" not in service
    assert "ports" not in service
    replicas = interpolate(str(service.get("deploy", {}).get("replicas", "1")), filled_env())
    assert int(replicas) >= 1


def test_every_dockerfile_exists_and_builds_from_the_repository_root(
    services: dict[str, Any],
) -> None:
    built = {name: service["build"] for name, service in services.items() if "build" in service}
    assert set(built) >= APP_SERVICES | {"mlflow"}
    for name, build in built.items():
        assert build["context"] == ".", name
        assert (ROOT / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"


def dockerfiles(services: dict[str, Any]) -> set[Path]:
    return {ROOT / s["build"]["dockerfile"] for s in services.values() if "build" in s}


def test_dockerfiles_use_slim_python_and_a_non_root_user(services: dict[str, Any]) -> None:
    for dockerfile in dockerfiles(services):
        instructions = parse_dockerfile(dockerfile)
        froms = [arguments for keyword, arguments in instructions if keyword == "FROM"]
        assert froms and re.fullmatch(r"python:3\.11\.\d+-slim", froms[-1].split()[0]), (
            dockerfile.name
        )
        user = last(instructions, "USER")
        assert user and user.split(":")[0] not in {"root", "0"}, f"{dockerfile.name}: USER"


def test_dockerfile_commands_resolve(services: dict[str, Any]) -> None:
    for dockerfile in dockerfiles(services):
        argv = image_argv(dockerfile)
        assert argv, f"{dockerfile.name} has no CMD/ENTRYPOINT"
        if dockerfile.name == "mlflow.Dockerfile":
            assert mlflow_server_argv(argv)[:4] == ["mlflow", "server", "--app-name", "basic-auth"]
        else:
            resolve_mmlw(argv)


def test_app_dockerfiles_install_the_project(services: dict[str, Any]) -> None:
    ignored = dockerignore_patterns()
    for dockerfile in dockerfiles(services):
        if dockerfile.name == "mlflow.Dockerfile":
            continue
        instructions = parse_dockerfile(dockerfile)
        runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
        server = r"pip install --no-cache-dir -c requirements.lock '\.\[server\]'(\s|$)"
        assert re.search(server, runs), f"{dockerfile.name} does not install mmlw[server]"
        assert re.search(r"pip install --no-cache-dir --no-deps \.(\s|$)", runs)
        for keyword, arguments in instructions:
            if keyword not in {"COPY", "ADD"} or "--from" in arguments:
                continue
            for source in arguments.split()[:-1]:
                assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"
                hits = [p for p in ignored if fnmatch.fnmatch(source.removeprefix("./"), p)]
                assert not hits, f"{dockerfile.name} copies {source}, excluded by {hits}"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = set(dockerignore_patterns())
    assert {".git", ".env", ".mmlw-data", "**/__pycache__", ".pytest_cache"} <= patterns


def test_dashboard_reads_only_the_api(services: dict[str, Any]) -> None:
    dashboard = services["dashboard"]
    path, context = resolve_mmlw(interpolated(effective_argv(dashboard)))
    assert path == ["mmlw", "dashboard"]
    assert context.params["mlflow_url"].startswith("http")  # a URL browsers can open
    env = environment_of(dashboard)
    assert env["MMLW_DASHBOARD__HOST"] == "0.0.0.0"
    assert env["MMLW_DASHBOARD__API_URL"] == "http://api:8000"
    assert REQUIRED_REFERENCE.fullmatch(env["MMLW_DASHBOARD__API_KEY"])
    # no credentials of the store or the broker: the dashboard talks to the API only
    assert not {"MMLW_DATABASE_URL", "MMLW_BROKER__URL", "MMLW_MLFLOW_TRACKING_URI"} & set(env)
    assert depends_on(dashboard) == {"api": "service_healthy"}
    assert dashboard["build"]["dockerfile"] == "docker/dashboard.Dockerfile"
    ports = [interpolate(str(p), filled_env()) for p in dashboard["ports"]]
    assert ports == ["127.0.0.1:8050:8050"]


def test_alert_links_point_at_the_dashboard(services: dict[str, Any]) -> None:
    """Workers build alert links from MMLW_DASHBOARD__PUBLIC_URL (settings.dashboard)."""
    for name in ("worker", "beat", "api"):
        env = environment_of(services[name])
        url = interpolate(env["MMLW_DASHBOARD__PUBLIC_URL"], filled_env())
        assert url == interpolate(
            environment_of(services["dashboard"])["MMLW_DASHBOARD__PUBLIC_URL"], filled_env()
        )


def test_every_image_is_pinned_to_a_version(services: dict[str, Any]) -> None:
    """A floating tag (``latest``, ``3-management``, ``16``) gives a fresh deployment
    whatever was published that day instead of what was tested."""
    for name, service in services.items():
        image = service.get("image", "")
        if "build" in service:
            continue
        tag = image.rpartition(":")[2]
        assert re.search(r"\d+\.\d+", tag), f"{name}: image {image!r} has no version tag"


def test_ci_and_images_install_from_the_lock_file() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(
        line.split("==", 1) for line in lock.splitlines() if re.match(r"^[A-Za-z0-9_.-]+==", line)
    )
    for name in ("mlflow", "celery", "kombu", "pytest", "schemathesis", "scikit-learn"):
        assert name in pins, f"{name} is not locked"
    assert "-c requirements.lock" in (ROOT / ".ci" / "run").read_text()
    mlflow_image = (ROOT / "docker" / "mlflow.Dockerfile").read_text()
    assert f"MLFLOW_VERSION={pins['mlflow']}" in mlflow_image


# --------------------------------------------------------------------------- broker users
BROKER_USERS = {
    "api": "mmlw-api",
    "worker": "mmlw-worker",
    "scorer": "mmlw-worker",
    "beat": "mmlw-worker",
    "ingest": "mmlw-ingest",
    "simulator": "mmlw-publisher",  # what a machine holds
}
RABBITMQ_ENTRYPOINT = ROOT / "docker" / "rabbitmq-entrypoint.sh"
RABBITMQ_DEFINITIONS = ROOT / "configs" / "rabbitmq" / "definitions.json"


def test_each_process_logs_in_to_rabbitmq_as_its_own_user(services: dict[str, Any]) -> None:
    from urllib.parse import urlsplit

    for name, user in BROKER_USERS.items():
        url = interpolate(environment_of(services[name])["MMLW_BROKER__URL"], filled_env())
        assert urlsplit(url).username == user, name
    assert "MMLW_BROKER__URL" not in environment_of(services["migrate"])
    for name, service in services.items():  # the administrator is for operators only
        for text in iter_strings(service):
            assert "amqp://mmlw:" not in text, f"{name} logs in as the RabbitMQ administrator"


def test_rabbitmq_imports_the_rendered_definitions_at_boot(services: dict[str, Any]) -> None:
    from mmlw.messaging.provision import compose_definitions

    rabbitmq = services["rabbitmq"]
    mounts = {}  # container path -> host path of each bind mount
    for volume in rabbitmq["volumes"]:
        source, target, *_ = str(volume).split(":")
        mounts[target] = source
    entrypoint = as_argv(rabbitmq["entrypoint"])
    assert entrypoint[0] == "/bin/sh" and mounts[entrypoint[1]] == "./docker/rabbitmq-entrypoint.sh"
    assert as_argv(rabbitmq["command"]) == ["docker-entrypoint.sh", "rabbitmq-server"]
    script = RABBITMQ_ENTRYPOINT.read_text()
    template = re.search(r"MMLW_RABBITMQ_DEFINITIONS_TEMPLATE:-([^}]+)\}", script)
    target = re.search(r"MMLW_RABBITMQ_DEFINITIONS:-([^}]+)\}", script)
    assert template and target
    assert mounts[template.group(1)] == "./configs/rabbitmq/definitions.json"
    conf = (ROOT / "configs" / "rabbitmq" / "rabbitmq.conf").read_text()
    assert re.search(rf"^load_definitions = {re.escape(target.group(1))}$", conf, re.MULTILINE)
    assert json.loads(RABBITMQ_DEFINITIONS.read_text()) == compose_definitions(), (
        "regenerate: python -m mmlw.messaging.provision compose-definitions "
        "> configs/rabbitmq/definitions.json"
    )
    placeholders = set(re.findall(r"@hash:([A-Z_][A-Z0-9_]*)@", RABBITMQ_DEFINITIONS.read_text()))
    env = environment_of(rabbitmq)
    assert placeholders == {name for name in env if name.startswith("RABBITMQ_")}
    for name in placeholders:
        assert name in SECRET_VARIABLES and env[name] == f"${{{name}:?set {name} in .env}}"
