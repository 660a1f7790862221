"""Connecting to Postgres, and sorting its errors into what the pipeline must do.

Credentials come from ``dsn`` or from a Secrets Manager secret (the RDS JSON shape:
host, port, username, password, dbname) read through Powertools parameters and cached.
With ``iam_auth: true`` the password is an IAM authentication token instead
(``sinks.postgres.iam_auth``), and TLS is required unless the sink says otherwise.
No message that leaves this module carries a password: errors are rebuilt from their
first line with every known secret and any URL or ``password=`` credential masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from router.sink import RejectedChangeError, SinkError, TransientSinkError
from sinks.postgres.iam_auth import AuthTokens

SECRET_MAX_AGE = 300  # seconds a fetched secret is reused before asking Secrets Manager again
# SQLSTATE classes: https://www.postgresql.org/docs/current/errcodes-appendix.html
_TRANSIENT = ("08", "40", "53", "57", "58", "55P03", "55006")  # connection, rollback (deadlock,
# serialization), resources, operator intervention (timeouts, shutdown), system, lock not available
_REJECTED = ("22", "23")  # data exception, integrity constraint violation: this row will never fit
_MASKS = (re.compile(r"(?i)(password\s*=\s*)('[^']*'|\S+)"), re.compile(r"(://[^/:@\s]+:)[^@\s]+@"))


class Credentials:
    """Builds the connection string; remembers secret values to mask them in messages."""

    def __init__(self, options: dict[str, Any]):
        self.options = options
        self._secrets: set[str] = set()
        self.tokens = AuthTokens(options.get("region")) if options.get("iam_auth") else None

    def conninfo(self, refresh: bool = False) -> str:
        if "secret" in self.options:
            secret = _fetch_secret(self.options["secret"], refresh)
            base = make_conninfo(host=secret.get("host"), port=secret.get("port"), user=secret.get("username"),
                                 password=secret.get("password"), dbname=secret.get("dbname"))
        else:
            base = self.options["dsn"]
        try:
            given = conninfo_to_dict(base)
        except psycopg.ProgrammingError:
            raise SinkError("the sink's dsn is not a valid PostgreSQL connection string") from None
        extra = self._parameters(str(given.get("options") or ""))
        if self.tokens is not None:
            extra.update(self._iam_password(given, refresh))
        for password in (given.get("password"), extra.get("password")):
            if password:
                self._secrets.add(str(password))
        return make_conninfo(base, **extra)

    def _iam_password(self, given: dict[str, Any], refresh: bool) -> dict[str, Any]:
        assert self.tokens is not None
        if refresh:
            self.tokens.forget()
        host, user = given.get("host"), given.get("user")
        if not host or not user:
            raise SinkError("iam_auth needs the host and the user in the sink's dsn or secret")
        try:
            token = self.tokens.token(str(host), int(given.get("port") or 5432), str(user))
        except Exception as exc:  # botocore: no credentials, no region
            raise TransientSinkError(f"cannot sign an IAM database token: {type(exc).__name__}") from None
        return {"password": token, "sslmode": self.options.get("sslmode") or "require"}

    def _parameters(self, given_options: str) -> dict[str, Any]:
        # TimeZone: key columns of time types are compared as text in tombstones.
        # plan_cache_mode: the batch statements are prepared once per connection; a generic plan
        # made while a table was empty (a new route, a truncate) joins it by sequential scan and
        # stays cached while the table grows (measured: 15 ms -> 900 ms per batch of 1,000 within
        # a minute). A custom plan per batch sees the table's current size for ~0.2 ms of planning.
        fixed = ["-c TimeZone=UTC", "-c plan_cache_mode=force_custom_plan"]
        settings = [given_options, *fixed] if given_options else fixed
        for option, setting in (("statement_timeout_ms", "statement_timeout"), ("lock_timeout_ms", "lock_timeout")):
            if self.options.get(option) is not None:
                settings.append(f"-c {setting}={int(self.options[option])}")
        parameters = {"options": " ".join(settings), "connect_timeout": self.options["connect_timeout"],
                      "application_name": self.options["application_name"]}
        for name in ("sslmode", "sslrootcert"):
            if self.options.get(name):
                parameters[name] = self.options[name]
        return parameters

    def mask(self, text: str) -> str:
        return mask(text, self._secrets)


def _fetch_secret(name: str, refresh: bool) -> dict[str, Any]:
    from aws_lambda_powertools.utilities import parameters  # imported on use: only secret users pay for it

    try:
        value = parameters.get_secret(name, transform="json", max_age=SECRET_MAX_AGE, force_fetch=refresh)
    except Exception as exc:  # GetParameterError, TransformParameterError, botocore errors
        raise TransientSinkError(f"cannot read secret {name!r}: {type(exc).__name__}") from None
    if not isinstance(value, dict) or not value.get("host"):
        raise SinkError(f"secret {name!r} is not a JSON object with host, port, username, password, dbname")
    return value


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _MASKS[0].sub(r"\1***", text)
    return _MASKS[1].sub(r"\1***@", text)


UNDEFINED_TABLE = "42P01"


def classify(exc: BaseException, credentials: Credentials) -> SinkError:
    """The pipeline's view of a driver error: transient, rejected (one change), or a sink failure."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    message = credentials.mask(f"{type(exc).__name__}" + (f" [{sqlstate}]" if sqlstate else "") + f": {first_line}")
    if sqlstate == UNDEFINED_TABLE:  # a target or state table never created (issue 12)
        message += " (create the missing tables with: cdc-router schema --apply)"
    if sqlstate.startswith(_REJECTED):
        return RejectedChangeError(message)
    if sqlstate.startswith(_TRANSIENT) or (not sqlstate and isinstance(exc, (psycopg.OperationalError,
                                                                            psycopg.InterfaceError))):
        return TransientSinkError(message)
    return SinkError(message)
