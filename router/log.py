"""The one Powertools Logger shared by the handler, the pipeline and the sinks.

Structured keys (``route``, ``table``, counts), never f-string messages; record bodies
appear only for routes with ``log_records: true``.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "cdc-router"))
