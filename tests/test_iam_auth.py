"""IAM database authentication: the password is a token signed for the dsn's host, port and user,
reused across reconnects until shortly before it expires, never shown in an error."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from sinks.postgres.connection import Credentials, classify
from sinks.postgres.iam_auth import REFRESH_BEFORE, TOKEN_LIFETIME, AuthTokens

PROXY = "cdc.proxy-abc123.eu-west-1.rds.amazonaws.com"
OPTIONS = {"dsn": f"host={PROXY} port=5432 user=cdc_router dbname=app", "iam_auth": True, "region": "eu-west-1",
           "connect_timeout": 10, "application_name": "cdc-router"}


def test_the_token_is_signed_for_the_host_port_and_user_and_valid_fifteen_minutes() -> None:
    token = AuthTokens("eu-west-1").token(PROXY, 5432, "cdc_router")
    where, query = token.split("/?", 1)
    assert where == f"{PROXY}:5432"
    fields = parse_qs(query)
    assert (fields["Action"], fields["DBUser"], fields["X-Amz-Expires"]) == (["connect"], ["cdc_router"], ["900"])
    assert "/eu-west-1/rds-db/aws4_request" in fields["X-Amz-Credential"][0]


def test_a_token_is_reused_until_shortly_before_it_expires_then_signed_again() -> None:
    now = [1000.0]
    tokens = AuthTokens("eu-west-1", clock=lambda: now[0])
    first = tokens.token(PROXY, 5432, "cdc_router")
    now[0] += TOKEN_LIFETIME - REFRESH_BEFORE - 1      # a reconnect 9 minutes 59 s later: the same token
    assert tokens.token(PROXY, 5432, "cdc_router") == first and tokens.signed == 1
    now[0] += 2                                        # within 5 minutes of expiry: a new one
    tokens.token(PROXY, 5432, "cdc_router")
    assert tokens.signed == 2
    tokens.token(PROXY, 5432, "other_user")            # tokens are per user
    assert tokens.signed == 3


def test_the_connection_uses_the_token_as_its_password_over_tls_and_masks_it() -> None:
    credentials = Credentials(dict(OPTIONS))
    info = conninfo_to_dict(credentials.conninfo())
    assert (info["host"], info["user"], info["sslmode"]) == (PROXY, "cdc_router", "require")
    assert urlsplit("//" + info["password"]).hostname == PROXY.lower()
    error = psycopg.OperationalError(f"connection failed: password={info['password']} rejected")
    assert info["password"] not in str(classify(error, credentials))
    # a refused login (28P01) signs a new token at the next connect
    assert credentials.tokens is not None and credentials.tokens.signed == 1
    credentials.conninfo(refresh=True)
    assert credentials.tokens.signed == 2


@pytest.mark.parametrize("dsn", ["host=db.example dbname=app", "user=cdc dbname=app"])
def test_iam_auth_without_a_host_or_user_says_what_is_missing(dsn: str) -> None:
    with pytest.raises(Exception, match="iam_auth needs the host and the user"):
        Credentials({**OPTIONS, "dsn": dsn}).conninfo()


def test_an_explicit_sslmode_is_kept(monkeypatch: Any) -> None:
    info = conninfo_to_dict(Credentials({**OPTIONS, "sslmode": "verify-full"}).conninfo())
    assert info["sslmode"] == "verify-full"
