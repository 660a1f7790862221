"""The Postgres (Aurora, RDS, any PostgreSQL 13+) sink."""

from sinks.postgres.sink import PostgresSink

__all__ = ["PostgresSink"]
