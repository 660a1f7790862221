"""How the deployed function authenticates to its databases, as the template must grant and the deployer expects.

The default is a Secrets Manager secret (``secret:``): the role may read exactly that one, and
the password never appears in the function's configuration. A ``dsn`` that holds a password,
or that comes from a ``${VAR}`` (a template parameter the function receives in its
environment, readable by anyone allowed ``lambda:GetFunctionConfiguration``), is refused by
``package`` and ``template`` unless the deployer says so (``--allow-dsn-password``). With
``iam_auth: true`` there is no password at all: the role is granted ``rds-db:connect`` for the
dsn's or secret's user on a database (or RDS Proxy) named by a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from handlers.sam_settings import DbUser
from router.model import Config
from router.yamlfile import _ENV_RE as REFERENCE


def exposed(raw: Any, config: Config) -> list[str]:
    """One line per postgres sink whose password would sit in the function's configuration."""
    problems = []
    for name, options in _postgres_sinks(raw, config):
        dsn = options.get("dsn")
        if not isinstance(dsn, str) or options.get("iam_auth") is True:
            continue
        where = f"sinks.{name}.dsn"
        remedy = ("use secret: (a Secrets Manager secret), or iam_auth: true, or pass --allow-dsn-password "
                  "to deploy it anyway")
        if REFERENCE.fullmatch(dsn.strip()):
            problems.append(f"{where}: comes whole from a ${{VAR}}, which the deployed function receives in its "
                            f"environment (readable with lambda:GetFunctionConfiguration): {remedy}")
        elif _password(dsn):
            problems.append(f"{where}: holds a password, which would be readable in the zip or in the function's "
                            f"environment: {remedy}")
    return problems


def db_users(raw: Any, config: Config, parameterized: Callable[[str], str],
             parameter_for: Callable[[str], str]) -> list[DbUser]:
    """The database user of each ``iam_auth`` sink (``*`` when its secret or its dsn's variable names it)."""
    users = []
    for name, options in _postgres_sinks(raw, config):
        if options.get("iam_auth") is not True:
            continue
        dsn = options.get("dsn")
        user = _user(dsn) if isinstance(dsn, str) else None
        users.append(DbUser(name, parameter_for(name), parameterized(user) if user else "*"))
    return users


def _postgres_sinks(raw: Any, config: Config) -> list[tuple[str, dict[str, Any]]]:
    written = raw.get("sinks") if isinstance(raw, dict) else None
    written = written if isinstance(written, dict) else {}
    return [(name, written.get(name) or {}) for name, sink in config.sinks.items() if sink.type == "postgres"]


def _parsed(dsn: str) -> dict[str, Any]:
    """The dsn's parts, a ``${VAR}`` in it standing for some value."""
    try:
        return conninfo_to_dict(REFERENCE.sub("x", dsn))
    except psycopg.ProgrammingError:
        return {}


def _password(dsn: str) -> bool:
    return bool(_parsed(dsn).get("password"))


def _user(dsn: str) -> str | None:
    if REFERENCE.fullmatch(dsn.strip()):
        return None  # the whole dsn is a variable: its user is not known here
    match = re.search(r"(?:^|\s)user\s*=\s*(\S+)|://([^:@/\s]+)[:@]", dsn)
    user = match and (match.group(1) or match.group(2))
    return user.strip("'") if user else None
