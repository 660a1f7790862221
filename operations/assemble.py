"""Assembly: the product's sink types and Lambda event parser (DynamoDB Streams and Kinesis) handed to the core.

The core (``router``) names no source or sink implementation; entry points and
operations build configs, sinks and pipelines through these functions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from router import config as config_module
from router.model import Config, Route
from router.pipeline import Parser, Pipeline
from router.sink import Sink, SinkTypes
from sinks.registry import SINK_TYPES
from sources.lambda_events import parse_event


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None,
                sink_types: SinkTypes = SINK_TYPES, *, offline: bool = False) -> Config:
    """``router.config.load_config`` with the product's sink types (default path: $CDC_ROUTER_CONFIG)."""
    return config_module.load_config(path, sink_types, environ, offline=offline)


def parse_config(text: str, path: str = config_module.DEFAULT_PATH, environ: Mapping[str, str] | None = None,
                 sink_types: SinkTypes = SINK_TYPES, *, offline: bool = False) -> Config:
    return config_module.parse_config(text, sink_types, path, environ, offline=offline)


def build_sinks(config: Config, sink_types: SinkTypes = SINK_TYPES) -> dict[str, Sink]:
    """One sink per configured sink, each with the routes it writes."""
    routes_by_sink: dict[str, list[Route]] = {}
    for route in config.routes.values():
        routes_by_sink.setdefault(route.sink, []).append(route)
    return {name: sink_types[sink_config.type](sink_config, routes_by_sink.get(name, []))
            for name, sink_config in config.sinks.items()}


def pipeline_for(config: Config, sinks: Mapping[str, Sink] | None = None, parse: Parser = parse_event) -> Pipeline:
    """The pipeline of ``config``: its sinks (built unless given), the Lambda event parser, and Secrets Manager
    for the mask keys."""
    return Pipeline(config, build_sinks(config) if sinks is None else sinks, parse, read_secret)


def read_secret(name: str) -> str:
    """A Secrets Manager secret's text (the HMAC key of masked columns: ``router.masking``)."""
    import boto3  # on use: only configs with a mask_secret pay for it

    return str(boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])


def pipeline_from_path(path: str | os.PathLike[str] | None = None) -> Pipeline:
    return pipeline_for(load_config(path))
