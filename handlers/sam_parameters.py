"""The template's parameters and conditions: what a deployer sets without rendering again.

Render-time settings (``handlers.sam_settings``) become the parameters' defaults. A number
that CloudFormation cannot leave unset is switched off by a sentinel that a condition tests:
``ReservedConcurrency`` 0 (no reservation; a reservation of 0 would stop the function) and
``NoInvocationsAlarmMinutes`` 0 (no such alarm).
"""

from __future__ import annotations

import re
from typing import Any

from handlers.sam_intrinsics import ref
from handlers.sam_settings import DbUser, EnvReference, Settings

LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653]
NAMES = ("BatchSize", "MaximumBatchingWindowInSeconds", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
         "StartingPosition", "ParallelizationFactor", "MemorySize", "Timeout", "ReservedConcurrency",
         "SubnetIds", "SecurityGroupIds", "FailureBucketArn", "LagAlarmThresholdMs", "IteratorAgeAlarmThresholdMs",
         "NoInvocationsAlarmMinutes", "AlarmTopicArn", "LogRetentionInDays")
CONDITIONS = ("HasSubnets", "HasAlarmTopic", "HasReservedConcurrency", "HasFailureBucket", "HasNoInvocationsAlarm")


def parameters(settings: Settings, triggers: dict[str, str], env: list[EnvReference],
               db_users: list[DbUser]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for source, event in triggers.items():
        found[event + "Arn"] = {
            "Type": "String", "Description": f"Stream ARN of the DynamoDB table {source} (its LatestStreamArn)",
            "AllowedPattern": r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/" + re.escape(source) + "/stream/.+"}
    for reference in env:
        found[reference.parameter] = {
            "Type": "String", "Description": f"${{{reference.var}}} in tables.yaml",
            **({"Default": reference.default} if reference.default is not None else {}),
            **({} if reference.names_secret else {"NoEcho": True})}
    for user in db_users:
        found[user.parameter] = {
            "Type": "String", "AllowedPattern": "(db|cluster|prx)-[A-Za-z0-9]+",
            "Description": f"Sink {user.sink} (iam_auth): the resource id of the DB instance (db-...), Aurora "
                           "cluster (cluster-...) or RDS Proxy (prx-...) it connects to"}
    return found | _trigger_parameters(settings) | _function_parameters(settings) | _alarm_parameters(settings)


def conditions() -> dict[str, Any]:
    def is_set(name: str, unset: Any = "") -> dict[str, Any]:
        return {"Fn::Not": [{"Fn::Equals": [ref(name), unset]}]}

    return {
        "HasSubnets": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", ref("SubnetIds")]}, ""]}]},
        "HasAlarmTopic": is_set("AlarmTopicArn"),
        "HasReservedConcurrency": is_set("ReservedConcurrency", 0),
        "HasFailureBucket": is_set("FailureBucketArn"),
        "HasNoInvocationsAlarm": is_set("NoInvocationsAlarmMinutes", 0),
    }


def _number(default: int, low: int, high: int, description: str) -> dict[str, Any]:
    return {"Type": "Number", "Default": default, "MinValue": low, "MaxValue": high, "Description": description}


def _trigger_parameters(settings: Settings) -> dict[str, Any]:
    return {
        "BatchSize": _number(settings.batch_size, 1, 10000, "Records per invocation, per trigger"),
        "MaximumBatchingWindowInSeconds": _number(settings.batching_window, 0, 300,
                                                  "Seconds to gather records before invoking"),
        "MaximumRetryAttempts": _number(settings.max_retries, 0, 10000,
                                        "Retries of a failing batch before it goes to the failure queue"),
        "MaximumRecordAgeInSeconds": _number(settings.max_record_age, 60, 604800,
                                             "Age after which a failing record goes to the failure queue"),
        "StartingPosition": {"Type": "String", "Default": settings.starting_position,
                             "AllowedValues": ["TRIM_HORIZON", "LATEST"]},
        "ParallelizationFactor": _number(settings.parallelization, 1, 10, (
            "Batches of one shard processed at once (the version guard keeps them convergent); "
            "each is a concurrent execution and a database connection")),
        "FailureBucketArn": {"Type": "String", "Default": "", "AllowedPattern": "(arn:aws[a-z-]*:s3:::.+)?",
                             "Description": "An S3 bucket ARN as the on-failure destination instead of the failure "
                                            "queue (cdc-router failures reads the queue only)"},
    }


def _function_parameters(settings: Settings) -> dict[str, Any]:
    return {
        "MemorySize": _number(settings.memory_mb, 128, 10240, "The function's memory (MB); CPU grows with it"),
        "Timeout": _number(settings.timeout_s, 3, 900, "Seconds an invocation may run"),
        "ReservedConcurrency": _number(0, 0, 10000, (
            "Concurrent executions reserved for, and capping, the function: at most this many database "
            "connections (0: no reservation, the account's unreserved pool)")),
        "SubnetIds": {"Type": "CommaDelimitedList", "Default": "",
                      "Description": "Subnets that reach the database; empty: the function runs outside any VPC"},
        "SecurityGroupIds": {"Type": "CommaDelimitedList", "Default": "",
                             "Description": "Security groups of the function, with SubnetIds"},
        "LogRetentionInDays": {"Type": "Number", "Default": 30, "AllowedValues": LOG_RETENTION_DAYS},
    }


def _alarm_parameters(settings: Settings) -> dict[str, Any]:
    return {
        "LagAlarmThresholdMs": _number(settings.lag_alarm_ms, 1000, 86400000,
                                       "Replication lag (ms) that raises a route's lag alarm"),
        "IteratorAgeAlarmThresholdMs": _number(settings.iterator_age_alarm_ms, 1000, 86400000,
                                               "Iterator age (ms) of a trigger that raises the IteratorAge alarm"),
        "NoInvocationsAlarmMinutes": _number(0, 0, 1440, (
            "Alarm when the function was not invoked for this many minutes (a disabled trigger, a stopped "
            "source); only for tables written to all the time. 0: no such alarm")),
        "AlarmTopicArn": {"Type": "String", "Default": "", "Description": "SNS topic for the alarms (optional)"},
    }
