"""Broker users: the permission regexes, provisioning through fakes of rabbitmqctl and the
management API (the real broker: tests/integration/test_broker_privileges.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from mmlw.errors import ServiceUnavailable
from mmlw.messaging.provision import (
    ManagementApi,
    Rabbitmqctl,
    broker_accounts,
    main,
    password_hash,
    provision,
)

DEFINITIONS = Path(__file__).resolve().parents[2] / "configs" / "rabbitmq" / "definitions.json"
PASSWORDS = {role: f"{role}-password-0123" for role in ("publisher", "ingest", "worker", "api")}


def may(role: str, permission: str, name: str) -> bool:
    account = {a.role: a for a in broker_accounts("mmlw")}[role]
    return re.fullmatch(getattr(account, permission).strip("^$") or "(?!)", name) is not None


@pytest.mark.parametrize(
    ("role", "permission", "allowed", "refused"),
    [
        ("publisher", "write", ["mmlw.readings"], ["", "amq.default", "mmlw.ingest", "mmlw.dead"]),
        ("publisher", "configure", [], ["mmlw.readings", "mmlw.ingest", "amq.gen-x"]),
        ("publisher", "read", [], ["mmlw.ingest", "mmlw.readings"]),
        ("ingest", "read", ["mmlw.ingest", "mmlw.readings"], ["mmlw.train", "mmlw.notify"]),
        (
            "ingest",
            "write",
            ["mmlw.score", "mmlw.score.0", "mmlw.score.15", "mmlw.ingest"],
            ["mmlw.readings", "amq.default", "mmlw.predict", "mmlw.scorers", "mmlw.score.x"],
        ),
        (
            "worker",
            "read",
            ["mmlw.score.3", "mmlw.scorers", "mmlw.scorers.0a1b2c3d4e5f"],
            ["mmlw.ingest", "mmlw.score.a", "mmlw.scorers.x!"],
        ),
        (
            "worker",
            "read",
            [
                "mmlw.train",
                "mmlw.predict",
                "mmlw.notify",
                "mmlw-42@host.example.com.mmlw.celery.pidbox",  # a node's mailbox queue
                "mmlw.celery.pidbox",
                "reply.mmlw.celery.pidbox",
                "0b5e7c1a-9d3f.reply.mmlw.celery.pidbox",
                "mmlw.celeryev",
                "mmlw.celeryev.0b5e7c1a-9d3f",
            ],
            ["mmlw.ingest", "mmlw.readings", "mmlw.dead", "other.celery.pidbox", "celeryev.x"],
        ),
        ("worker", "write", ["mmlw.notify"], ["", "amq.default", "mmlw.readings"]),
        ("api", "write", ["mmlw.readings", "mmlw.train"], ["amq.default", "mmlw.celery.pidbox"]),
        ("api", "read", ["mmlw.readings", "mmlw.dead"], ["mmlw.ingest", "mmlw.celery.pidbox"]),
    ],
)
def test_each_role_reaches_only_its_names(
    role: str, permission: str, allowed: list[str], refused: list[str]
) -> None:
    for name in allowed:
        assert may(role, permission, name), (role, permission, name)
    for name in refused:
        assert not may(role, permission, name), (role, permission, name)


def test_names_follow_the_namespace_and_prefix() -> None:
    accounts = broker_accounts("t-1", user_prefix="site")
    assert [a.user for a in accounts] == [
        "site-publisher",
        "site-ingest",
        "site-worker",
        "site-api",
    ]
    assert accounts[0].write == r"^t\-1\.readings$"
    assert accounts[0].password_env == "RABBITMQ_PUBLISHER_PASSWORD"


def test_password_hash_is_rabbitmqs_salted_sha256() -> None:
    hashed = base64.b64decode(password_hash("s3cret", salt=b"\x01\x02\x03\x04"))
    assert hashed == b"\x01\x02\x03\x04" + hashlib.sha256(b"\x01\x02\x03\x04s3cret").digest()
    assert password_hash("s3cret") != password_hash("s3cret")  # a fresh salt each time


class FakeAdmin:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def ensure_vhost(self, vhost: str) -> None:
        self.calls.append(("vhost", vhost))

    def put_user(self, user: str, password: str) -> None:
        self.calls.append(("user", user, password))

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        self.calls.append(("permissions", vhost, user, configure, write, read))

    def delete_user(self, user: str) -> None:
        raise AssertionError("not used")

    def delete_vhost(self, vhost: str) -> None:
        raise AssertionError("not used")


def test_provision_checks_every_password_before_changing_anything() -> None:
    admin = FakeAdmin()
    with pytest.raises(ValueError, match="mmlw-ingest: a password of at least 12"):
        provision(admin, broker_accounts(), {**PASSWORDS, "ingest": "short"})
    with pytest.raises(ValueError, match="mmlw-api"):
        provision(admin, broker_accounts(), {k: v for k, v in PASSWORDS.items() if k != "api"})
    assert admin.calls == []
    provision(admin, broker_accounts(), PASSWORDS, vhost="plant")
    assert admin.calls[0] == ("vhost", "plant")
    assert ("user", "mmlw-publisher", PASSWORDS["publisher"]) in admin.calls
    assert (
        "permissions",
        "plant",
        "mmlw-publisher",
        "^$",
        r"^mmlw\.readings$",
        "^$",
    ) in admin.calls


def test_rabbitmqctl_gets_passwords_on_stdin_never_on_the_command_line() -> None:
    runs: list[tuple[list[str], str | None]] = []
    existing = {"mmlw-worker"}

    def run(argv: list[str], *, input: str | None, **_: Any) -> subprocess.CompletedProcess[str]:
        runs.append((argv, input))
        if argv[6] == "add_user" and argv[7] in existing:
            return subprocess.CompletedProcess(
                argv, 70, "", f'Error:\nUser "{argv[7]}" already exists'
            )
        return subprocess.CompletedProcess(argv, 0, "", "")

    provision(
        Rabbitmqctl(["docker", "exec", "-i", "rabbit", "rabbitmqctl"], run=run),
        broker_accounts(),
        PASSWORDS,
    )
    for argv, _ in runs:
        assert argv[:5] == ["docker", "exec", "-i", "rabbit", "rabbitmqctl"]
        assert not any(password in " ".join(argv) for password in PASSWORDS.values())
    commands = [(argv[6], argv[7] if len(argv) > 7 else None, stdin) for argv, stdin in runs]
    assert ("add_user", "mmlw-publisher", PASSWORDS["publisher"] + "\n") in commands
    assert ("change_password", "mmlw-worker", PASSWORDS["worker"] + "\n") in commands
    assert ("set_user_tags", "mmlw-worker", None) in commands  # an existing user loses its tags


def test_rabbitmqctl_failures_are_one_line() -> None:
    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            argv, 69, "", "Error: unable to perform an operation\n on node"
        )

    with pytest.raises(
        ServiceUnavailable,
        match="add_vhost exited with 69: Error: unable to perform an operation on node",
    ):
        Rabbitmqctl(run=run).ensure_vhost("/")


def test_the_management_api_gets_hashes_not_passwords() -> None:
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(201 if request.method == "PUT" else 204)

    api = ManagementApi(
        "http://rabbit:15672/", "admin", "admin-pass", transport=httpx.MockTransport(handle)
    )
    provision(api, broker_accounts()[:1], PASSWORDS)
    api.close()
    assert [(r.method, r.url.raw_path.decode()) for r in requests] == [
        ("PUT", "/api/vhosts/%2F"),
        ("PUT", "/api/users/mmlw-publisher"),
        ("PUT", "/api/permissions/%2F/mmlw-publisher"),
    ]
    user = json.loads(requests[1].content)
    assert PASSWORDS["publisher"] not in requests[1].content.decode()
    salted = base64.b64decode(user["password_hash"])
    assert salted[4:] == hashlib.sha256(salted[:4] + PASSWORDS["publisher"].encode()).digest()
    assert (user["hashing_algorithm"], user["tags"]) == ("rabbit_password_hashing_sha256", "")
    assert json.loads(requests[2].content) == {
        "configure": "^$",
        "write": r"^mmlw\.readings$",
        "read": "^$",
    }
    assert requests[0].headers["authorization"].startswith("Basic ")

    refused = ManagementApi(
        "http://rabbit:15672",
        "admin",
        "x",
        transport=httpx.MockTransport(lambda r: httpx.Response(401, text="Not_Authorized")),
    )
    with pytest.raises(ServiceUnavailable, match="401 Not_Authorized"):
        refused.ensure_vhost("/")


def test_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose-definitions"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(DEFINITIONS.read_text())
    assert main(["show"]) == 0
    assert (
        "mmlw-publisher  configure=^$  write=^mmlw\\.readings$  read=^$" in capsys.readouterr().out
    )
    assert main(["apply", "--roles", "publisher,root"]) == 2
    assert "unknown ['root']" in capsys.readouterr().err
    assert main(["apply", "--roles", "publisher"], environ={}) == 1  # no password set
    assert "mmlw-publisher: a password of at least 12" in capsys.readouterr().err
