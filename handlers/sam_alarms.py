"""The stack's CloudWatch alarms: the function, the failure queue, and each route.

Silence is watched as well as failure. A function that is throttled, or fails at init, or
cannot reach its database, shows in ``Throttles`` and ``Errors`` (on a database outage the
handler raises, see ``handlers.lambda_handler``); a trigger that falls behind shows in
``IteratorAge``. A trigger that is disabled, or a function that is never invoked, emits no
metric at all: only an alarm that treats missing data as breaching sees it, and that is
right only for tables that are always written to, so it is off unless
``NoInvocationsAlarmMinutes`` is set. Route alarms carry the stack's name as their
``service`` dimension, so two stacks in one account never share a metric.
"""

from __future__ import annotations

from typing import Any

from handlers.observability import COUNTS, LAG
from handlers.sam_intrinsics import get_att, ref

NAMESPACE = "CdcRouter"


def function_alarms() -> dict[str, Any]:
    def function() -> list[tuple[str, Any]]:  # fresh each time: a shared dict is dumped as a YAML alias
        return [("FunctionName", ref("Function"))]

    return {
        "FunctionErrorsAlarm": alarm(
            "The function failed (an exception, a timeout, an init failure, a database it cannot reach): "
            "Lambda retries the batch", "AWS/Lambda", "Errors", function(), "Sum", 1),
        "FunctionThrottlesAlarm": alarm(
            "Invocations were throttled (ReservedConcurrency, the account's limit): the streams fall behind",
            "AWS/Lambda", "Throttles", function(), "Sum", 1),
        "IteratorAgeAlarm": alarm(
            "A trigger reads its stream more than IteratorAgeAlarmThresholdMs behind; records expire after 24 h",
            "AWS/Lambda", "IteratorAge", function(), "Maximum", ref("IteratorAgeAlarmThresholdMs"),
            period=60, periods=5, datapoints=3, operator="GreaterThanThreshold"),
        "NoInvocationsAlarm": {**alarm(
            "The function was not invoked for NoInvocationsAlarmMinutes: a disabled trigger, or nothing written",
            "AWS/Lambda", "Invocations", function(), "Sum", 1, period=60, periods=ref("NoInvocationsAlarmMinutes"),
            datapoints=ref("NoInvocationsAlarmMinutes"), operator="LessThanThreshold", missing="breaching"),
            "Condition": "HasNoInvocationsAlarm"},
        "FailureQueueAlarm": alarm(
            "Batches were given up on: cdc-router failures list, then failures replay (README: Recovering)",
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", [("QueueName", get_att("FailureQueue", "QueueName"))],
            "Maximum", 1),
    }


def route_alarms(route: str, prefix: str) -> dict[str, Any]:
    def dimensions() -> list[tuple[str, Any]]:
        return [("service", ref("AWS::StackName")), ("route", route)]

    return {
        prefix + "LagAlarm": alarm(f"Route {route} is behind its stream by more than LagAlarmThresholdMs",
                                   NAMESPACE, LAG, dimensions(), "Maximum", ref("LagAlarmThresholdMs"),
                                   period=60, periods=5, datapoints=3, operator="GreaterThanThreshold"),
        prefix + "FailedAlarm": alarm(f"Route {route}: records failed and are being retried",
                                      NAMESPACE, COUNTS["failed"], dimensions(), "Sum", 1),
        prefix + "DeadLetteredAlarm": alarm(f"Route {route}: records were dead-lettered (cdc-router dead-letters list)",
                                            NAMESPACE, COUNTS["dead_lettered"], dimensions(), "Sum", 1),
    }


def alarm(description: str, namespace: str, metric: str, dimensions: list[tuple[str, Any]], statistic: str,
          threshold: Any, period: int = 300, periods: Any = 1, datapoints: Any = 1,
          operator: str = "GreaterThanOrEqualToThreshold", missing: str = "notBreaching") -> dict[str, Any]:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, "Namespace": namespace, "MetricName": metric,
        "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions],
        "Statistic": statistic, "Period": period, "EvaluationPeriods": periods, "DatapointsToAlarm": datapoints,
        "Threshold": threshold, "ComparisonOperator": operator, "TreatMissingData": missing,
        "AlarmActions": {"Fn::If": ["HasAlarmTopic", [ref("AlarmTopicArn")], ref("AWS::NoValue")]},
    }}
