"""Broker users with least privilege, and how to create them on a live RabbitMQ.

RabbitMQ grants each user three regular expressions per vhost: which exchanges and
queues it may declare or delete (configure), publish to or bind from the queue side
(write), and consume, purge or bind from the exchange side (read). One user per role::

    role       used by                          configure / write / read
    publisher  machines, `mmlw simulate`        - / <ns>.readings / -
    ingest     `mmlw ingest`                    the readings path, the scoring path
    worker     `mmlw worker`, `mmlw scorer`,    task queues, the scoring path, Celery
               `mmlw beat`                      control and events
    api        `mmlw api`                       the readings path and the task queues

A publisher can publish readings and nothing else: it cannot declare, consume, purge,
publish anywhere else (Celery's control exchange ``<ns>.celery.pidbox`` included). A
passive declare needs no permission, so :class:`~mmlw.messaging.pika_publisher.
PikaReadingsPublisher` checks the exchange that way when it may not declare it.

``python -m mmlw.messaging.provision apply`` creates or updates the users (passwords
from ``RABBITMQ_<ROLE>_PASSWORD``) with ``rabbitmqctl`` or the management HTTP API;
``compose-definitions`` prints the template compose loads at boot
(``configs/rabbitmq/definitions.json``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from mmlw.errors import ServiceUnavailable

__all__ = [
    "ROLES",
    "BrokerAccount",
    "BrokerAdmin",
    "ManagementApi",
    "Rabbitmqctl",
    "broker_accounts",
    "compose_definitions",
    "main",
    "password_hash",
    "provision",
]

ROLES = ("publisher", "ingest", "worker", "api")
MIN_PASSWORD_LENGTH = 12
HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
NOTHING = "^$"  # matches no exchange or queue name


@dataclass(frozen=True)
class BrokerAccount:
    """One broker user: its name and its permissions on the deployment's vhost."""

    role: str
    user: str
    configure: str
    write: str
    read: str
    used_by: str

    @property
    def password_env(self) -> str:
        """The environment variable ``apply`` and compose read its password from."""
        return f"RABBITMQ_{self.role.upper()}_PASSWORD"


def _names(namespace: str, *names: str) -> str:
    """A regex matching exactly ``<namespace>.<name>`` for each name."""
    alternatives = names[0] if len(names) == 1 else f"({'|'.join(names)})"
    return rf"^{re.escape(namespace)}\.{alternatives}$"


def broker_accounts(namespace: str = "mmlw", user_prefix: str | None = None) -> list[BrokerAccount]:
    r"""The users of one namespace (names ``<user_prefix>-<role>``, prefix default the
    namespace), in :data:`ROLES` order.

    >>> publisher = broker_accounts()[0]
    >>> print(publisher.user, publisher.configure, publisher.write, publisher.read)
    mmlw-publisher ^$ ^mmlw\.readings$ ^$
    """
    ns, prefix = re.escape(namespace), user_prefix or namespace
    readings_path = ("readings", "ingest", "dead")
    tasks = ("train", "predict", "notify")
    scoring = (r"score", r"score\.\d+")  # exchange <ns>.score, queues <ns>.score.<k>
    scorers = r"scorers(\.[0-9a-f]+)?"  # load reports: exchange <ns>.scorers, a queue each
    # Celery's control plane (mailbox exchange <ns>.celery.pidbox, replies on
    # reply.<ns>.celery.pidbox, queues <node>.<ns>.celery.pidbox and <oid>.reply.<ns>...)
    # and its events (exchange <ns>.celeryev, queues <ns>.celeryev.<id>): see celery_config
    celery = rf"(.+\.)?(reply\.)?{ns}\.celery\.pidbox|{ns}\.celeryev(\..+)?"
    worker = rf"^({ns}\.({'|'.join((*tasks, *scoring, scorers))})|{celery})$"
    return [
        BrokerAccount(
            "publisher", f"{prefix}-publisher", NOTHING, _names(namespace, "readings"), NOTHING,
            "machines and `mmlw simulate`: publish readings, nothing else",
        ),
        BrokerAccount(  # declares and binds the readings and scoring paths; sends to scoring
            "ingest", f"{prefix}-ingest",
            _names(namespace, *readings_path, *scoring),
            _names(namespace, "ingest", "dead", *scoring),
            _names(namespace, *readings_path, *scoring),
            "`mmlw ingest`: consume <ns>.ingest, send stored batches to scoring",
        ),
        BrokerAccount(
            "worker", f"{prefix}-worker", worker, worker, worker,
            "`mmlw worker`, `mmlw scorer` and `mmlw beat`: score, run and send tasks, "
            "Celery control and events",
        ),
        BrokerAccount(  # publishes readings (HTTP, replays), sends every kind of task
            "api", f"{prefix}-api",
            _names(namespace, *readings_path, *tasks),
            _names(namespace, *readings_path, *tasks),
            _names(namespace, "readings", "dead", *tasks),
            "`mmlw api`: publish readings and replays, send tasks",
        ),
    ]  # fmt: skip


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + SHA-256(salt + password))
    with a 4-byte random salt (what definitions files and the HTTP API take)."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _check_password(user: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH or "\n" in password or "\r" in password:
        raise ValueError(
            f"{user}: a password of at least {MIN_PASSWORD_LENGTH} characters on one line is "
            "required (e.g. `openssl rand -hex 24`)"
        )


class BrokerAdmin(Protocol):
    """What provisioning needs of RabbitMQ's administration interface."""

    def ensure_vhost(self, vhost: str) -> None: ...

    def put_user(self, user: str, password: str) -> None:
        """Create the user, or set its password; either way with no tags."""

    def set_permissions(
        self, vhost: str, user: str, configure: str, write: str, read: str
    ) -> None: ...

    def delete_user(self, user: str) -> None: ...

    def delete_vhost(self, vhost: str) -> None: ...


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class Rabbitmqctl:
    """:class:`BrokerAdmin` through ``rabbitmqctl`` (run as root or the rabbitmq user, or
    prefixed: ``docker exec -i <container> rabbitmqctl``). Passwords go through stdin,
    never on a command line."""

    def __init__(
        self,
        command: Sequence[str] = ("rabbitmqctl",),
        *,
        timeout_s: float = 60.0,
        run: Runner = subprocess.run,
    ) -> None:
        self._command = list(command)
        self._timeout_s = timeout_s
        self._run = run

    def _ctl(self, *args: str, stdin: str | None = None, exists_ok: bool = False) -> bool:
        """Run one command; False if it failed because the object already exists and
        ``exists_ok``, else :class:`ServiceUnavailable` on any failure."""
        argv = [*self._command, "--quiet", *args]
        try:
            done = self._run(
                argv, input=stdin, capture_output=True, text=True, timeout=self._timeout_s
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceUnavailable(f"rabbitmqctl: {args[0]} failed: {exc}") from exc
        if done.returncode == 0:
            return True
        why = " ".join((done.stderr or done.stdout or "").split())
        if exists_ok and "already exists" in why:
            return False
        raise ServiceUnavailable(f"rabbitmqctl: {args[0]} exited with {done.returncode}: {why}")

    def ensure_vhost(self, vhost: str) -> None:
        self._ctl("add_vhost", vhost, exists_ok=True)

    def put_user(self, user: str, password: str) -> None:
        if not self._ctl("add_user", user, stdin=password + "\n", exists_ok=True):
            self._ctl("change_password", user, stdin=password + "\n")
            self._ctl("set_user_tags", user)  # none: no management UI, no administrator

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        self._ctl("set_permissions", "-p", vhost, user, configure, write, read)

    def delete_user(self, user: str) -> None:
        self._ctl("delete_user", user)

    def delete_vhost(self, vhost: str) -> None:
        self._ctl("delete_vhost", vhost)


class ManagementApi:
    """:class:`BrokerAdmin` through the management plugin's HTTP API (``http://host:15672``)
    with an administrator's login. Passwords are sent as salted hashes."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        timeout_s: float = 30.0,
        transport: Any = None,
    ) -> None:
        import httpx

        self._client = httpx.Client(
            base_url=url.rstrip("/") + "/api",
            auth=(username, password),
            timeout=timeout_s,
            transport=transport,
        )

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> None:
        import httpx

        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"RabbitMQ management API: {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            raise ServiceUnavailable(
                f"RabbitMQ management API: {method} {path}: {response.status_code} "
                f"{response.text[:200]}"
            )

    def ensure_vhost(self, vhost: str) -> None:
        self._call("PUT", f"/vhosts/{quote(vhost, safe='')}", {})

    def put_user(self, user: str, password: str) -> None:
        body = {
            "password_hash": password_hash(password),
            "hashing_algorithm": HASHING_ALGORITHM,
            "tags": "",
        }
        self._call("PUT", f"/users/{quote(user, safe='')}", body)

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        path = f"/permissions/{quote(vhost, safe='')}/{quote(user, safe='')}"
        self._call("PUT", path, {"configure": configure, "write": write, "read": read})

    def delete_user(self, user: str) -> None:
        self._call("DELETE", f"/users/{quote(user, safe='')}")

    def delete_vhost(self, vhost: str) -> None:
        self._call("DELETE", f"/vhosts/{quote(vhost, safe='')}")

    def close(self) -> None:
        self._client.close()


def provision(
    admin: BrokerAdmin,
    accounts: Sequence[BrokerAccount],
    passwords: Mapping[str, str],
    *,
    vhost: str = "/",
) -> None:
    """Create or update each account's user (``passwords`` by role) with exactly its
    permissions on ``vhost`` (created if missing). Idempotent: run it again to rotate a
    password or after an upgrade changed the permissions. Every password is checked
    before anything changes."""
    for account in accounts:
        _check_password(account.user, passwords.get(account.role, ""))
    admin.ensure_vhost(vhost)
    for account in accounts:
        admin.put_user(account.user, passwords[account.role])
        admin.set_permissions(vhost, account.user, account.configure, account.write, account.read)


def compose_definitions(namespace: str = "mmlw", admin_user: str = "mmlw") -> dict[str, Any]:
    """The definitions compose imports at boot (``configs/rabbitmq/definitions.json``): the
    administrator ``admin_user`` (operators and the management UI; no MMLW process) and
    the role users on vhost ``/``. Each ``password_hash`` is a placeholder
    ``@hash:<VARIABLE>@`` that ``docker/rabbitmq-entrypoint.sh`` replaces at container
    start with a salted hash of that environment variable."""
    accounts = broker_accounts(namespace)
    users = [(admin_user, "RABBITMQ_PASSWORD", ["administrator"])]
    users += [(a.user, a.password_env, []) for a in accounts]
    permissions = [(admin_user, ".*", ".*", ".*")]
    permissions += [(a.user, a.configure, a.write, a.read) for a in accounts]
    return {
        "users": [
            {
                "name": name,
                "password_hash": f"@hash:{variable}@",
                "hashing_algorithm": HASHING_ALGORITHM,
                "tags": tags,
            }
            for name, variable, tags in users
        ],
        "vhosts": [{"name": "/"}],
        "permissions": [
            {"user": user, "vhost": "/", "configure": c, "write": w, "read": r}
            for user, c, w, r in permissions
        ],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmlw.messaging.provision",
        description="Least-privilege RabbitMQ users for MMLW (see docs/security.md).",
    )
    parser.add_argument("--namespace", default="mmlw", help="MMLW_BROKER__NAMESPACE")
    parser.add_argument("--user-prefix", default=None, help="user names: <prefix>-<role>")
    commands = parser.add_subparsers(dest="command", required=True)
    apply = commands.add_parser(
        "apply", help="create or update users; passwords from RABBITMQ_<ROLE>_PASSWORD"
    )
    apply.add_argument("--vhost", default="/")
    apply.add_argument("--roles", default=",".join(ROLES), help="comma separated subset")
    apply.add_argument(
        "--rabbitmqctl",
        default="rabbitmqctl",
        help="the rabbitmqctl command, e.g. 'docker exec -i rabbit rabbitmqctl'",
    )
    apply.add_argument(
        "--management-url",
        default=None,
        help="use the management HTTP API instead (login: --admin-user, RABBITMQ_ADMIN_PASSWORD)",
    )
    apply.add_argument("--admin-user", default="guest")
    commands.add_parser("show", help="print each user's permissions")
    commands.add_parser("compose-definitions", help="print configs/rabbitmq/definitions.json")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    accounts = broker_accounts(args.namespace, args.user_prefix)
    if args.command == "compose-definitions":
        print(json.dumps(compose_definitions(args.namespace), indent=2))
        return 0
    if args.command == "show":
        for a in accounts:
            print(f"{a.user}  configure={a.configure}  write={a.write}  read={a.read}")
            print(f"    {a.used_by}; password: {a.password_env}")
        return 0
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        print(f"--roles: unknown {unknown}; choose from {list(ROLES)}", file=sys.stderr)
        return 2
    chosen = [a for a in accounts if a.role in roles]
    passwords = {a.role: env.get(a.password_env, "") for a in chosen}
    admin: BrokerAdmin
    if args.management_url:
        admin = ManagementApi(
            args.management_url, args.admin_user, env.get("RABBITMQ_ADMIN_PASSWORD", "")
        )
    else:
        admin = Rabbitmqctl(shlex.split(args.rabbitmqctl))
    try:
        provision(admin, chosen, passwords, vhost=args.vhost)
    except (ValueError, ServiceUnavailable) as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 1
    for a in chosen:
        print(f"{a.user}: provisioned on vhost {args.vhost!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
