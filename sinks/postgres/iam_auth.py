"""IAM database authentication: a short-lived token from ``rds.generate_db_auth_token`` as the password.

With ``iam_auth: true`` the sink connects as a database user granted ``rds_iam``, with a token
that the function's role signs for that user (``rds-db:connect``), directly or through RDS
Proxy (the proxy endpoint as the host). A token is valid for 15 minutes and is only checked
when a connection opens, so one token serves every reconnect for a while: it is cached per
host, port and user, and signed again 5 minutes before it expires
(https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.Connecting.html).
Signing is local (no call to AWS), so a function in a VPC needs no endpoint for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TOKEN_LIFETIME = 900   # seconds: the token's X-Amz-Expires
REFRESH_BEFORE = 300   # seconds before expiry when a new token is signed


class AuthTokens:
    """Tokens per (host, port, user), reused until ``REFRESH_BEFORE`` seconds before they expire."""

    def __init__(self, region: str | None = None, clock: Callable[[], float] = time.monotonic):
        self.region = region
        self.clock = clock
        self._client: Any = None
        self._cache: dict[tuple[str, int, str], tuple[str, float]] = {}
        self.signed = 0  # tokens signed so far

    def token(self, host: str, port: int, user: str) -> str:
        key = (host, port, user)
        cached = self._cache.get(key)
        now = self.clock()
        if cached is not None and now < cached[1]:
            return cached[0]
        token: str = self._rds().generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user,
                                                        Region=self.region)
        self._cache[key] = (token, now + TOKEN_LIFETIME - REFRESH_BEFORE)
        self.signed += 1
        return token

    def forget(self) -> None:
        """Sign a new token at the next connect (the server refused the last one)."""
        self._cache.clear()

    def _rds(self) -> Any:
        if self._client is None:
            import boto3  # imported on use: only IAM-auth users pay for it at cold start

            self._client = boto3.client("rds", region_name=self.region)
        return self._client
