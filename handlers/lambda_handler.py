"""The Lambda entry point: wiring only. Config, routes and sink connections are built once
per container, at import (an invalid tables.yaml stops the function from starting).

Config path: ``CDC_ROUTER_CONFIG``, else ``config/tables.yaml`` beside the deployed code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from router import deadline
from router.config import ENV_VAR
from router.log import logger
from router.pipeline import Pipeline

CONFIG_PATH = os.environ.get(ENV_VAR) or str(Path(__file__).resolve().parent.parent / "config" / "tables.yaml")
pipeline = Pipeline.from_path(CONFIG_PATH)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(request_id=getattr(context, "aws_request_id", None))
    with deadline.until(deadline.from_lambda_context(context)):
        return pipeline.process(event).response
