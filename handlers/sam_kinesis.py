"""The Kinesis part of the SAM template: one trigger per Kinesis data stream, not per table.

Several tables may stream into one Kinesis data stream (``kinesis: NAME`` on their routes);
the function reads each stream once, through one event source mapping with partial batch
responses, bisection, bounded retries and record age, and the stack's failure queue. Its
ARN is the parameter ``<Name>StreamArn``. Kinesis adds ParallelizationFactor (up to 10
concurrent batches per shard: safe, since Kinesis routes order by version, not by
delivery) and the AT_TIMESTAMP starting position (with ``KinesisStartingPositionTimestamp``).

The role may read exactly those streams. A stream encrypted with a customer managed KMS key
also needs ``kms:Decrypt`` on that key: give its ARN as ``KinesisKmsKeyArn`` (AWS-managed
``aws/kinesis`` encryption needs nothing).
"""

from __future__ import annotations

import re
from typing import Any

from handlers import sam_resources as res
from router.model import Config

STREAM_ACTIONS = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                  "kinesis:GetShardIterator", "kinesis:ListShards"]
STARTING_POSITIONS = ["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
FIXED_NAMES = ("ParallelizationFactor", "KinesisStartingPosition", "KinesisStartingPositionTimestamp",
               "KinesisKmsKeyArn", "IsAtTimestamp", "HasKinesisKmsKey")


def kinesis_streams(config: Config) -> list[str]:
    """The Kinesis data streams the config's routes read, each once."""
    return sorted({route.kinesis for route in config.routes.values() if route.kinesis is not None})


def dynamodb_sources(config: Config) -> list[str]:
    """The source tables read through their DynamoDB stream (routes without ``kinesis:``)."""
    return sorted(source for source, routes in config.routes_by_source.items() if routes[0].kinesis is None)


def add_kinesis(template: dict[str, Any], triggers: dict[str, str], config: Config) -> None:
    """Add one trigger per stream (``triggers``: stream name -> event id) to a rendered template;
    without any DynamoDB Streams trigger left, take out what only those need."""
    if not triggers:
        return
    tables = dynamodb_sources(config)
    if not tables:
        _without_dynamodb_streams(template)
    template["Parameters"].update(_parameters(triggers, config))
    template["Conditions"].update({
        "IsAtTimestamp": {"Fn::Equals": [res.ref("KinesisStartingPosition"), "AT_TIMESTAMP"]},
        "HasKinesisKmsKey": {"Fn::Not": [{"Fn::Equals": [res.ref("KinesisKmsKeyArn"), ""]}]},
    })
    resources = template["Resources"]
    resources["Function"]["Properties"]["Events"].update({event: _trigger(event) for event in triggers.values()})
    statements = resources["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements[1:1] = [
        {"Sid": "ReadKinesisStreams", "Effect": "Allow", "Action": STREAM_ACTIONS,
         "Resource": [res.ref(event + "Arn") for event in triggers.values()]},
        {"Fn::If": ["HasKinesisKmsKey", {"Sid": "DecryptKinesisStreams", "Effect": "Allow", "Action": "kms:Decrypt",
                                         "Resource": res.ref("KinesisKmsKeyArn")}, res.ref("AWS::NoValue")]},
    ]
    sources = ([f"DynamoDB Streams of {', '.join(tables)}"] if tables else []) + [
        f"Kinesis data streams {', '.join(triggers)}"]
    template["Description"] = f"cdc-router: {' and '.join(sources)} replicated by one function"


def _without_dynamodb_streams(template: dict[str, Any]) -> None:
    del template["Parameters"]["StartingPosition"]
    statements = template["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "ReadStreams"]


def _parameters(triggers: dict[str, str], config: Config) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for stream, event in triggers.items():
        tables = sorted({route.source for route in config.routes.values() if route.kinesis == stream})
        parameters[event + "Arn"] = {
            "Type": "String", "Description": f"ARN of the Kinesis data stream {stream} (tables {', '.join(tables)})",
            "AllowedPattern": r"arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/" + re.escape(stream)}
    parameters.update({
        "ParallelizationFactor": {"Type": "Number", "Default": 1, "MinValue": 1, "MaxValue": 10,
                                  "Description": "Concurrent batches per Kinesis shard"},
        "KinesisStartingPosition": {"Type": "String", "Default": "TRIM_HORIZON", "AllowedValues": STARTING_POSITIONS,
                                    "Description": "Where a new Kinesis trigger starts reading"},
        "KinesisStartingPositionTimestamp": {
            "Type": "Number", "Default": 0, "MinValue": 0,
            "Description": "With AT_TIMESTAMP: the time to start from, in epoch seconds"},
        "KinesisKmsKeyArn": {"Type": "String", "Default": "",
                             "Description": "Customer managed KMS key of encrypted streams (kms:Decrypt); empty: none"},
    })
    return parameters


def _trigger(event: str) -> dict[str, Any]:
    return {"Type": "Kinesis", "Properties": {
        "Stream": res.ref(event + "Arn"),
        "StartingPosition": res.ref("KinesisStartingPosition"),
        "StartingPositionTimestamp": {"Fn::If": ["IsAtTimestamp", res.ref("KinesisStartingPositionTimestamp"),
                                                 res.ref("AWS::NoValue")]},
        "BatchSize": res.ref("BatchSize"),
        "MaximumBatchingWindowInSeconds": res.ref("MaximumBatchingWindowInSeconds"),
        "ParallelizationFactor": res.ref("ParallelizationFactor"),
        "MaximumRetryAttempts": res.ref("MaximumRetryAttempts"),
        "MaximumRecordAgeInSeconds": res.ref("MaximumRecordAgeInSeconds"),
        **res.failure_handling(),
    }}
