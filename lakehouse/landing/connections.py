"""Connections: a named way to reach an object store, as MaxLake's CONNECTION is.

A connection has an endpoint, a region, optionally a role to assume, and optionally the *names* of
the environment variables holding its access key and secret (without them, the process's own AWS_*
credentials are used, within the limits below). Nothing secret is stored or printed: the catalog keeps the variable names,
errors name the connection, the endpoint and the variable, never a value.

A connection row is not trusted: whoever can write the catalog (a shared PostgreSQL catalog, a
leaked file) writes connections, and the daemon that uses them holds the platform's own secrets in
its environment (LAKEHOUSE_AUDIT_KEY, LAKEHOUSE_MASKING_SALT, PGPASSWORD, DAGSTER_*, its AWS_*
keys). A connection that could name any variable and any endpoint would make the daemon send those
to a server of the writer's choice (an access key id travels in clear in every signed request).
So every rule below is checked when a connection is added AND each time it is used (`check`, from
`base_credentials`), since a row written straight into the catalog never went through `add`:

- Its keys live in variables named for it: LAKEHOUSE_CONN_<NAME>_<ANYTHING>, where <NAME> is the
  connection's name in upper case with `-` as `_` (connection team-b: LAKEHOUSE_CONN_TEAM_B_KEY_ID,
  LAKEHOUSE_CONN_TEAM_B_SECRET, ...). An allow-list, not a list of what is forbidden: no setting of
  the platform starts with LAKEHOUSE_CONN_ (tests/serving/test_security_connections.py checks every
  LAKEHOUSE_* name the code reads), so no connection can name LAKEHOUSE_AUDIT_KEY,
  LAKEHOUSE_MASKING_SALT, PG*, DAGSTER_*, AWS_*, or any other program's secret.
- Its endpoints (--endpoint, --sts-endpoint) are https, or plain http on a loopback address
  (127.0.0.0/8, ::1, localhost: tests, a MinIO on this machine), or plain http because
  `connection add --allow-http` said so (stored with the row; a row stored without it is refused).
- Without key variables of its own it signs with the lakehouse's own credentials (AWS_* or
  botocore's chain), so it may only talk to where those go already: the lakehouse's own
  AWS_ENDPOINT_URL (same scheme, host and port), or AWS's own S3 and STS endpoints over https.

With a role, the keys only sign an STS AssumeRole call (at the connection's STS endpoint, by default
its endpoint: MinIO, moto and OSS-style gateways serve STS there); the temporary credentials it
returns are cached in the process and assumed again before they expire (REFRESH_MARGIN_SECONDS
ahead), so a daemon running for days never reads with expired credentials.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
KEY_VARIABLE_PREFIX = "LAKEHOUSE_CONN_"
"""Every connection key variable starts so; no setting of the platform does."""
KEY_VARIABLE_SUFFIX = re.compile(r"^[A-Z0-9_]+$")
AWS_SERVICE_HOST = re.compile(
    r"^(s3|sts)(-fips|-external-1|-[a-z]{2}(-gov)?-[a-z]+-\d)?(\.dualstack)?"
    r"(\.[a-z]{2}(-gov)?-[a-z]+-\d)?\.amazonaws\.com(\.cn)?$"
)
"""AWS's own S3 and STS endpoints (s3.amazonaws.com, s3.eu-west-1.amazonaws.com, sts.amazonaws.com,
...): never a host under amazonaws.com that a customer controls (bucket.s3..., *.execute-api...)."""


class ConnectionFailed(RuntimeError):
    """A connection cannot give credentials or reach its store; the message names the connection,
    never a secret."""


def key_variable_prefix(name: str) -> str:
    """What the names of connection `name`'s key variables start with: LAKEHOUSE_CONN_TEAM_B_."""
    return f"{KEY_VARIABLE_PREFIX}{name.upper().replace('-', '_')}_"


def is_loopback_host(host: str | None) -> bool:
    """`localhost` or a loopback address literal (127.0.0.0/8, ::1, ::ffff:127.x). No name is looked
    up (what a name resolves to may change between this check and the request), and 0.0.0.0 is not
    loopback here."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


def _shown_url(url: str) -> str:
    """A URL fit for an error: credentials in it (user:password@), if any, as ***."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _endpoints(record: ConnectionRecord) -> list[tuple[str, str]]:
    found = [("--endpoint", record.endpoint)]
    if record.sts_endpoint is not None:
        found.append(("--sts-endpoint", record.sts_endpoint))
    return found


def problem(record: ConnectionRecord, env: Mapping[str, str] | None = None) -> str | None:
    """What makes the connection unsafe or unusable (naming the flag and the variable, never a
    value), or None. The rules: the module's docstring. Reads the names in `env`, no value."""
    env = os.environ if env is None else env
    if not isinstance(record.name, str) or not NAME.match(record.name):
        return f"connection name {record.name!r} must be letters, digits, _ or -"
    for flag, url in _endpoints(record):
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            return f"{flag} must be an http(s):// URL, got {_shown_url(str(url))!r}"
        if "@" in url.split("/")[2]:
            return f"{flag} must not hold credentials (user:password@); name variables instead"
        try:
            _origin(url)
        except ValueError:
            return f"{flag} {url!r} is not a URL (its port?)"
    if record.role_arn is not None and not ROLE_ARN.match(record.role_arn):
        return f"--role-arn must look like arn:aws:iam::123456789012:role/NAME, got {record.role_arn!r}"
    if (record.access_key_env is None) != (record.secret_key_env is None):
        return "--access-key-env and --secret-key-env go together"
    prefix = key_variable_prefix(record.name)
    variables = [
        (flag, value)
        for flag, value in (
            ("--access-key-env", record.access_key_env),
            ("--secret-key-env", record.secret_key_env),
        )
        if value is not None
    ]
    for flag, value in variables:
        # Mixed case is refused unshown too: a secret typed where its variable's name belongs
        # (key variables are upper case) must not be echoed by the message below.
        if not isinstance(value, str) or not ENV_NAME.match(value) or KEY_ID.match(value):
            return f"{flag} takes the NAME of an environment variable (letters, digits, _), not its value"
        if value != value.upper():
            return (
                f"{flag} takes the NAME of an environment variable, in upper case "
                f"({prefix}...), not its value"
            )
    for flag, value in variables:
        if not (value.startswith(prefix) and KEY_VARIABLE_SUFFIX.match(value[len(prefix) :])):
            return (
                f"{flag} names variable {value}, but connection {record.name}'s keys must be in "
                f"variables named {prefix}<...> (e.g. {prefix}ACCESS_KEY_ID and "
                f"{prefix}SECRET_ACCESS_KEY), so that no connection can name the platform's own "
                "secrets (LAKEHOUSE_*, PG*, DAGSTER_*, AWS_*, ...); it was not read"
            )
    for flag, url in _endpoints(record):
        scheme, host, _port = _origin(url)
        if scheme != "https" and not is_loopback_host(host) and not record.allow_http:
            return (
                f"{flag} {url} is plain http to a host that is not loopback: the keys and the data "
                "would cross the network in clear; use https, or add the connection with --allow-http "
                "if that network is trusted"
            )
    if record.access_key_env is None:
        own = (env.get("AWS_ENDPOINT_URL") or "").strip().rstrip("/")
        for flag, url in _endpoints(record):
            scheme, host, port = _origin(url)
            if own and (scheme, host, port) == _origin(own):
                continue
            if scheme == "https" and AWS_SERVICE_HOST.match(host):
                continue
            return (
                f"{flag} {url}: without --access-key-env/--secret-key-env the connection would sign "
                "with the lakehouse's own AWS credentials, which only go to its own AWS_ENDPOINT_URL "
                f"({own or 'not set'}) or to AWS's S3/STS endpoints over https; give the connection "
                f"keys of its own ({prefix}ACCESS_KEY_ID, {prefix}SECRET_ACCESS_KEY)"
            )
    return None


def validate(record: ConnectionRecord, env: Mapping[str, str] | None = None) -> None:
    """Raise ValueError naming the bad field of a connection about to be stored."""
    found = problem(record, env)
    if found is not None:
        raise ValueError(found)


def check(record: ConnectionRecord, env: Mapping[str, str] | None = None) -> None:
    """The same rules when the connection is about to be used (a row written straight into the
    catalog never went through `validate`): ConnectionFailed naming the connection, before any
    variable is read or any endpoint is contacted."""
    found = problem(record, env)
    if found is not None:
        raise ConnectionFailed(f"connection {record.name} refused: {found}")


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
    """The connection's own keys (from the variables it names) or, without, the process's AWS_* ones;
    first the connection is `check`ed (ConnectionFailed naming it and the rule it breaks)."""
    env = os.environ if env is None else env
    check(record, env)
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
