"""The IAM statements a Redshift sink needs, derived from its options (``cdc-router template``).

What the Lambda calls: ``BatchExecuteStatement`` on the workgroup or cluster, then
``DescribeStatement`` (and ``CancelStatement`` near the deadline) on its own statements, and
the Data API authenticates as the sink's options say:

- ``secret_arn``: ``secretsmanager:GetSecretValue`` on that secret;
- ``workgroup`` without a secret: ``redshift-serverless:GetCredentials`` (the database user is
  the role, ``IAMR:<role name>``);
- ``cluster_identifier`` with ``db_user``: ``redshift:GetClusterCredentials`` for that user and
  database;
- ``cluster_identifier`` alone: ``redshift:GetClusterCredentialsWithIAM`` for that database.

See https://docs.aws.amazon.com/redshift/latest/mgmt/data-api-iam.html and the Service
Authorization Reference for ``redshift-data``, ``redshift`` and ``redshift-serverless``.
Describe and Cancel take no resource; they are limited to statements this role started
(``redshift-data:statement-owner-iam-userid``). A workgroup's ARN holds its id, not its name,
so workgroup actions name every workgroup of the account and Region.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

DATA_API_RUN = "redshift-data:BatchExecuteStatement"
DATA_API_OWN = ["redshift-data:DescribeStatement", "redshift-data:CancelStatement"]
ARN = "arn:${AWS::Partition}:%s:%s:${AWS::AccountId}:%s"


def redshift_statements(name: str, options: dict[str, Any], sub: Callable[[str], str]) -> list[dict[str, Any]]:
    """The statements for Redshift sink ``name``; ``sub`` maps a written option value (which may
    hold ``${VAR}`` references) to ``Fn::Sub`` text that follows the stack's parameters."""
    sid = "Redshift" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name))
    region = sub(options["region"]) if options.get("region") else "${AWS::Region}"
    if options.get("workgroup"):
        target = _arn("redshift-serverless", region, "workgroup/*")
    else:
        target = _arn("redshift", region, "cluster:" + sub(options["cluster_identifier"]))
    statements = [
        {"Sid": sid + "Run", "Effect": "Allow", "Action": DATA_API_RUN, "Resource": target},
        {"Sid": sid + "Poll", "Effect": "Allow", "Action": DATA_API_OWN, "Resource": "*",
         "Condition": {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}},
    ]
    return statements + [{"Sid": sid + "Authenticate", "Effect": "Allow", **_credentials(options, region, sub)}]


def _credentials(options: dict[str, Any], region: str, sub: Callable[[str], str]) -> dict[str, Any]:
    if options.get("secret_arn"):
        return {"Action": "secretsmanager:GetSecretValue", "Resource": {"Fn::Sub": sub(options["secret_arn"])}}
    if options.get("workgroup"):
        return {"Action": "redshift-serverless:GetCredentials",
                "Resource": _arn("redshift-serverless", region, "workgroup/*")}
    cluster, database = sub(options["cluster_identifier"]), sub(options["database"])
    dbname = _arn("redshift", region, f"dbname:{cluster}/{database}")
    if options.get("db_user"):
        return {"Action": "redshift:GetClusterCredentials",
                "Resource": [_arn("redshift", region, f"dbuser:{cluster}/{sub(options['db_user'])}"), dbname]}
    return {"Action": "redshift:GetClusterCredentialsWithIAM", "Resource": dbname}


def _arn(service: str, region: str, resource: str) -> dict[str, str]:
    return {"Fn::Sub": ARN % (service, region, resource)}
