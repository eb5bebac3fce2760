"""Connections: a named way to reach an object store, as MaxLake's CONNECTION is.

A connection has an endpoint, a region, optionally a role to assume, and optionally the *names* of
the environment variables holding its access key and secret (without them, the process's own AWS_*
credentials are used). Nothing secret is stored or printed: the catalog keeps the variable names,
errors name the connection, the endpoint and the variable, never a value.

With a role, the keys only sign an STS AssumeRole call (at the connection's STS endpoint, by default
its endpoint: MinIO, moto and OSS-style gateways serve STS there); the temporary credentials it
returns are cached in the process and assumed again before they expire (REFRESH_MARGIN_SECONDS
ahead), so a daemon running for days never reads with expired credentials.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lakehouse.core.settings import S3Credentials
from lakehouse.storage.discovery import ConnectionRecord

ROLE_SESSION_SECONDS = 3600
"""How long assumed credentials are asked to last."""
REFRESH_MARGIN_SECONDS = 600
"""Assume the role again when the credentials in hand expire within this many seconds."""
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{12,}$")
"""What an AWS access key id looks like: refused where a variable's name is expected."""
ROLE_ARN = re.compile(r"^arn:[A-Za-z0-9-]+:iam::[0-9]*:role/[\w+=,.@/-]+$")


class ConnectionFailed(RuntimeError):
    """A connection cannot give credentials or reach its store; the message names the connection,
    never a secret."""


def validate(record: ConnectionRecord) -> None:
    """Raise ValueError naming the bad field of a connection about to be stored."""
    if not NAME.match(record.name):
        raise ValueError(f"connection name {record.name!r} must be letters, digits, _ or -")
    for flag, url in (("--endpoint", record.endpoint), ("--sts-endpoint", record.sts_endpoint)):
        if url is None:
            continue
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{flag} must be an http(s):// URL, got {url!r}")
        if "@" in url.split("/")[2]:
            raise ValueError(f"{flag} must not hold credentials (user:password@); name variables instead")
    if record.role_arn is not None and not ROLE_ARN.match(record.role_arn):
        raise ValueError(
            f"--role-arn must look like arn:aws:iam::123456789012:role/NAME, got {record.role_arn!r}"
        )
    if (record.access_key_env is None) != (record.secret_key_env is None):
        raise ValueError("--access-key-env and --secret-key-env go together")
    for flag, value in (
        ("--access-key-env", record.access_key_env),
        ("--secret-key-env", record.secret_key_env),
    ):
        if value is not None and (not ENV_NAME.match(value) or KEY_ID.match(value)):
            raise ValueError(
                f"{flag} takes the NAME of an environment variable (letters, digits, _), not its value"
            )


def scrubbed(reason: BaseException | str, secrets: list[str | None]) -> str:
    """An error as one line of at most 300 characters, every secret in it shown as ***."""
    text = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
    text = (text.strip().splitlines() or [""])[0][:300]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass
class _Assumed:
    credentials: S3Credentials
    expires_at: float


_assumed: dict[tuple[str, str, str | None], _Assumed] = {}
_lock = threading.Lock()


def base_credentials(record: ConnectionRecord, env: Mapping[str, str] | None = None) -> S3Credentials:
    """The connection's own keys (from the variables it names) or, without, the process's AWS_* ones."""
    env = os.environ if env is None else env
    key: str | None
    secret: str | None
    if record.access_key_env and record.secret_key_env:
        missing = [v for v in (record.access_key_env, record.secret_key_env) if not env.get(v)]
        if missing:
            raise ConnectionFailed(
                f"connection {record.name}: environment variable {', '.join(missing)} is not set "
                "(it holds the connection's key)"
            )
        key, secret = env[record.access_key_env], env[record.secret_key_env]
    else:
        key, secret = env.get("AWS_ACCESS_KEY_ID") or None, env.get("AWS_SECRET_ACCESS_KEY") or None
    return S3Credentials(
        endpoint_url=record.endpoint,
        access_key_id=key,
        secret_access_key=secret,
        region=record.region or env.get("AWS_REGION") or "us-east-1",
    )


def credentials(record: ConnectionRecord, env: Mapping[str, str] | None = None) -> S3Credentials:
    """Credentials to reach the connection's store now: its keys, or a role assumed with them."""
    base = base_credentials(record, env)
    if not record.role_arn:
        return base
    cache_key = (record.name, record.role_arn, base.access_key_id)
    with _lock:
        held = _assumed.get(cache_key)
        if held is not None and held.expires_at - time.time() > REFRESH_MARGIN_SECONDS:
            return held.credentials
        fresh = _assume(record, base)
        _assumed[cache_key] = fresh
        return fresh.credentials


def _sts(record: ConnectionRecord, creds: S3Credentials) -> Any:
    import botocore.session

    return botocore.session.get_session().create_client(
        "sts",
        endpoint_url=record.sts_endpoint or record.endpoint,
        region_name=creds.region,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    )


def _assume(record: ConnectionRecord, base: S3Credentials) -> _Assumed:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = _sts(record, base).assume_role(
            RoleArn=record.role_arn,
            RoleSessionName=f"lakehouse-{record.name}"[:64],
            DurationSeconds=ROLE_SESSION_SECONDS,
        )
    except (ClientError, BotoCoreError) as exc:
        reason = scrubbed(str(exc), [base.secret_access_key, base.access_key_id])
        raise ConnectionFailed(
            f"connection {record.name}: cannot assume role {record.role_arn} at "
            f"{record.sts_endpoint or record.endpoint}: {reason}"
        ) from None
    given = answer["Credentials"]
    return _Assumed(
        S3Credentials(
            endpoint_url=record.endpoint,
            access_key_id=given["AccessKeyId"],
            secret_access_key=given["SecretAccessKey"],
            session_token=given.get("SessionToken"),
            region=base.region,
        ),
        given["Expiration"].timestamp(),
    )


def forget_assumed() -> None:
    """Drop every cached assumed credential (tests; a rotated role)."""
    with _lock:
        _assumed.clear()


def auth_error(
    record: ConnectionRecord, location: str, exc: BaseException, secrets: list[str | None]
) -> ConnectionFailed:
    """A failure to list or read through a connection, as an error naming it and never a secret."""
    return ConnectionFailed(
        f"connection {record.name} cannot read {location} (endpoint {record.endpoint}): "
        f"{scrubbed(exc, secrets)}"
    )


def whoami(record: ConnectionRecord) -> str:
    """Who the connection authenticates as now (STS GetCallerIdentity with its credentials)."""
    from botocore.exceptions import BotoCoreError, ClientError

    creds = credentials(record)
    try:
        return str(_sts(record, creds).get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError) as exc:
        reason = scrubbed(str(exc), [creds.secret_access_key, creds.session_token, creds.access_key_id])
        raise ConnectionFailed(
            f"connection {record.name}: cannot authenticate at {record.sts_endpoint or record.endpoint}: {reason}"
        ) from None
