"""A moto server (its own process, on 127.0.0.1, stopped by PID) that enforces IAM: requests are
signed with keys it issued, an assumed role's temporary keys work until they expire, anything else
is refused (InvalidAccessKeyId / SignatureDoesNotMatch / AccessDenied).

Two teams: `team_a` may use bucket raw-a with its own keys; `team_b` holds keys that may only assume
role `game-reader`, which may use bucket raw-b. `admin` may do anything (the tests land files
with it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lakehouse.core.settings import S3Credentials

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/game-reader"


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class AuthS3:
    endpoint: str
    pid: int
    admin: Keys
    team_a: Keys
    team_b: Keys
    role_arn: str = ROLE_ARN

    def credentials(self, keys: Keys) -> S3Credentials:
        return S3Credentials(self.endpoint, keys.access_key_id, keys.secret_access_key, "us-east-1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(endpoint: str, service: str, keys: Keys | None = None):  # type: ignore[no-untyped-def]
    import botocore.session

    return botocore.session.get_session().create_client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=keys.access_key_id if keys else "setup",
        aws_secret_access_key=keys.secret_access_key if keys else "setup",
    )


def _policy(statements: list[dict[str, object]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _bucket_access(bucket: str) -> list[dict[str, object]]:
    return [
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        },
        {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
    ]


@contextmanager
def auth_s3(log: Path) -> Iterator[AuthS3]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        iam = _client(endpoint, "iam")
        keys: dict[str, Keys] = {}
        for user, statements in (
            ("admin", [{"Effect": "Allow", "Action": "*", "Resource": "*"}]),
            ("team_a", _bucket_access("raw-a")),
            ("team_b", [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE_ARN}]),
        ):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="access", PolicyDocument=_policy(statements))
            made = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = Keys(made["AccessKeyId"], made["SecretAccessKey"])
        trust = _policy(
            [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/team_b"},
                    "Action": "sts:AssumeRole",
                }
            ]
        )
        iam.create_role(RoleName="game-reader", AssumeRolePolicyDocument=trust)
        iam.put_role_policy(
            RoleName="game-reader", PolicyName="access", PolicyDocument=_policy(_bucket_access("raw-b"))
        )
        s3 = _client(endpoint, "s3")
        for bucket in ("raw-a", "raw-b"):
            s3.create_bucket(Bucket=bucket)
        # from now on every request must be signed with keys moto issued, and allowed by a policy
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            assert answer.status == 200
        yield AuthS3(endpoint, proc.pid, keys["admin"], keys["team_a"], keys["team_b"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
