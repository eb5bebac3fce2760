"""Connections and DataScan tasks, before any server: what may be stored, and what an error says."""

from __future__ import annotations

import pytest

from lakehouse.landing.connections import ConnectionFailed, auth_error, base_credentials, validate
from lakehouse.landing.tasks import ScanTask
from lakehouse.storage.discovery import ConnectionRecord

ROLE = "arn:aws:iam::123456789012:role/game-reader"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (ConnectionRecord("team b", "http://127.0.0.1:9000"), "connection name 'team b'"),
        (ConnectionRecord("b", "127.0.0.1:9000"), "--endpoint must be an http(s):// URL"),
        (ConnectionRecord("b", "http://127.0.0.1:9000", role_arn="game-reader"), "--role-arn must look like"),
        (ConnectionRecord("b", "http://x", access_key_env="K"), "go together"),
        (ConnectionRecord("b", "http://me:pw@127.0.0.1:9000"), "must not hold credentials"),
        (
            ConnectionRecord("b", "http://x", access_key_env="AKIAIOSFODNN7EXAMPLE", secret_key_env="S"),
            "takes the NAME of an environment variable",
        ),
        (
            ConnectionRecord(
                "b", "http://x", access_key_env="AKIAEXAMPLE", secret_key_env="wJalr/XUtnFEMI+K7MDENG"
            ),
            "takes the NAME of an environment variable",
        ),
    ],
)
def test_a_connection_that_cannot_work_is_refused_naming_the_flag(
    record: ConnectionRecord, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        validate(record)


B_KEY, B_SECRET = "LAKEHOUSE_CONN_TEAM_B_KEY", "LAKEHOUSE_CONN_TEAM_B_SECRET"


def test_good_connections_validate() -> None:
    validate(ConnectionRecord("team_b", "https://s3.example.internal", "us-east-1", ROLE, B_KEY, B_SECRET))
    validate(
        ConnectionRecord(
            "team-a",
            "http://127.0.0.1:9000",
            access_key_env="LAKEHOUSE_CONN_TEAM_A_ACCESS_KEY_ID",
            secret_key_env="LAKEHOUSE_CONN_TEAM_A_SECRET_ACCESS_KEY",
        )
    )
    # the lakehouse's own keys, where they go already: its own endpoint, or AWS
    validate(ConnectionRecord("own", "http://127.0.0.1:9000"), {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/"})
    validate(ConnectionRecord("aws", "https://s3.eu-west-1.amazonaws.com", role_arn=ROLE), {})


def test_keys_come_from_the_variables_named_and_a_missing_one_is_named_not_shown() -> None:
    record = ConnectionRecord("team_b", "http://127.0.0.1:9000", None, None, B_KEY, B_SECRET)
    creds = base_credentials(record, {B_KEY: "AKIDEXAMPLE", B_SECRET: "s3cr3t-value"})
    assert (creds.access_key_id, creds.secret_access_key, creds.region) == (
        "AKIDEXAMPLE",
        "s3cr3t-value",
        "us-east-1",
    )
    assert "s3cr3t-value" not in repr(creds)
    with pytest.raises(
        ConnectionFailed,
        match="connection team_b: environment variable LAKEHOUSE_CONN_TEAM_B_SECRET is not set",
    ):
        base_credentials(record, {B_KEY: "AKIDEXAMPLE"})
    # without variables of its own, the process's AWS_* keys (at its own endpoint)
    plain = base_credentials(
        ConnectionRecord("c", "https://minio.internal"),
        {
            "AWS_ACCESS_KEY_ID": "A",
            "AWS_SECRET_ACCESS_KEY": "S",
            "AWS_ENDPOINT_URL": "https://minio.internal:443",
        },
    )
    assert (plain.access_key_id, plain.secret_access_key) == ("A", "S")


def test_an_error_through_a_connection_never_carries_a_secret() -> None:
    record = ConnectionRecord("team_b", "http://127.0.0.1:9000")
    creds = base_credentials(
        record,
        {
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        },
    )
    error = auth_error(
        record,
        "s3://raw-b/x",
        PermissionError("denied for AKIDEXAMPLE with s3cr3t-value"),
        [creds.secret_access_key, creds.access_key_id],
    )
    assert "connection team_b cannot read s3://raw-b/x (endpoint http://127.0.0.1:9000)" in str(error)
    assert "s3cr3t-value" not in str(error) and "AKIDEXAMPLE" not in str(error)


def test_a_named_task_records_full_uris_and_the_default_task_relative_paths() -> None:
    task = ScanTask("openlake", "s3://raw-b/openlake", "game_db", "team_b", 60, "ods_")
    assert task.sensor_name == "datascan_openlake" and not task.is_default
    assert task.relative("s3://raw-b/openlake/user_event/a.parquet") == "user_event/a.parquet"
    assert task.folder("game_db", "ods_user_event") == "user_event"
    default = ScanTask("default", "/lake/landing", None)
    assert default.sensor_name == "datascan" and default.relative("iov/t/x.parquet") == "iov/t/x.parquet"
    assert default.uri("iov/t/x.parquet") == "/lake/landing/iov/t/x.parquet"
