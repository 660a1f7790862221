"""What the SAM template is rendered from: render-time settings and ``${VAR}`` references of the config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Render-time choices; the trigger settings are the defaults of deploy-time parameters."""

    code_uri: str = "../build/cdc-router-lambda.zip"   # relative to the template file
    architecture: str = "x86_64"                       # must match `cdc-router package --arch`
    python_version: str = "3.12"                       # the runtime; must match `cdc-router package --python-version`
    batch_size: int = 100
    batching_window: int = 1                           # MaximumBatchingWindowInSeconds
    max_retries: int = 10                              # MaximumRetryAttempts
    max_record_age: int = 86400                        # MaximumRecordAgeInSeconds (stream retention: 24 h)
    starting_position: str = "TRIM_HORIZON"
    parallelization: int = 1                           # ParallelizationFactor: batches per shard at once
    lag_alarm_ms: int = 60000
    iterator_age_alarm_ms: int = 300000
    memory_mb: int = 512
    timeout_s: int = 60

    @property
    def runtime(self) -> str:
        return "python" + self.python_version


@dataclass(frozen=True)
class EnvReference:
    var: str
    parameter: str
    default: str | None
    names_secret: bool


@dataclass(frozen=True)
class DbUser:
    """A database user the function connects as with IAM authentication (``rds-db:connect``)."""

    sink: str
    parameter: str    # the template parameter naming the DB instance, cluster or proxy resource id
    user: str         # the user name; a ${VAR} in it is a ${Parameter} of the template
