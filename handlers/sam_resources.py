"""The pieces of the SAM template (``handlers.sam_template`` decides what goes in).

Intrinsic functions are written in their long form (``{"Ref": ...}``) so that the template
is plain data that ``yaml.safe_dump`` can write and tests can read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from handlers.observability import COUNTS, LAG
from handlers.sam_settings import EnvReference, Settings

NAMESPACE, SERVICE = "CdcRouter", "cdc-router"
HANDLER, RUNTIME = "handlers.lambda_handler.handler", "python3.12"
STREAM_ACTIONS = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                  "dynamodb:ListStreams"]
# What Lambda needs to attach the function to a VPC (AWSLambdaVPCAccessExecutionRole, written
# out). EC2 supports no resource-level permissions for the Describe actions, hence "*".
VPC_ACTIONS = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
               "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653]
FIXED_NAMES = ("BatchSize", "MaximumBatchingWindowInSeconds", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
               "StartingPosition", "SubnetIds", "SecurityGroupIds", "LagAlarmThresholdMs", "AlarmTopicArn",
               "LogRetentionInDays", "HasSubnets", "HasAlarmTopic", "FailureQueue", "FunctionLogGroup",
               "FunctionRole", "Function", "FunctionErrorsAlarm", "FailureQueueAlarm")


def ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [resource, attribute]}


def secret_arn(name: str) -> Any:
    """A secret's ARN from its name: Secrets Manager appends '-' and six random characters."""
    if name.startswith("arn:"):
        return {"Fn::Sub": name} if "${" in name else name
    return {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                       + name + "-??????"}


def template(settings: Settings, triggers: dict[str, str], alarms: dict[str, str],
             env: Iterable[EnvReference], secrets: list[Any]) -> dict[str, Any]:
    """``triggers``: source table -> event id; ``alarms``: route -> alarm id prefix."""
    env = list(env)
    resources: dict[str, Any] = {
        "FailureQueue": {"Type": "AWS::SQS::Queue",
                         "Properties": {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}},
        "FunctionLogGroup": {"Type": "AWS::Logs::LogGroup",
                             "Properties": {"RetentionInDays": ref("LogRetentionInDays")}},
        "FunctionRole": _role(triggers, secrets),
        "Function": _function(settings, triggers, env),
        "FunctionErrorsAlarm": _alarm("The function failed (an exception, a timeout): Lambda retries the batch",
                                      "AWS/Lambda", "Errors", [("FunctionName", ref("Function"))], "Sum", 1),
        "FailureQueueAlarm": _alarm("Batches were given up on: see the failure queue (README: Deploying)",
                                    "AWS/SQS", "ApproximateNumberOfMessagesVisible",
                                    [("QueueName", get_att("FailureQueue", "QueueName"))], "Maximum", 1),
    }
    for route, prefix in alarms.items():
        resources.update(_route_alarms(route, prefix))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "cdc-router: DynamoDB Streams of " + ", ".join(triggers) + " replicated by one function",
        "Parameters": _parameters(settings, triggers, env),
        "Conditions": {
            "HasSubnets": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", ref("SubnetIds")]}, ""]}]},
            "HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [ref("AlarmTopicArn"), ""]}]},
        },
        "Resources": resources,
        "Outputs": {
            "FunctionName": {"Value": ref("Function")},
            "FailureQueueUrl": {"Value": ref("FailureQueue")},
            "FunctionLogGroupName": {"Value": ref("FunctionLogGroup")},
        },
    }


def _number(default: int, low: int, high: int, description: str) -> dict[str, Any]:
    return {"Type": "Number", "Default": default, "MinValue": low, "MaxValue": high, "Description": description}


def _parameters(settings: Settings, triggers: dict[str, str], env: list[EnvReference]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for source, event in triggers.items():
        parameters[event + "Arn"] = {
            "Type": "String", "Description": f"Stream ARN of the DynamoDB table {source} (its LatestStreamArn)",
            "AllowedPattern": r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/" + re.escape(source) + "/stream/.+"}
    for reference in env:
        parameters[reference.parameter] = {
            "Type": "String", "Description": f"${{{reference.var}}} in tables.yaml",
            **({"Default": reference.default} if reference.default is not None else {}),
            **({} if reference.names_secret else {"NoEcho": True})}
    parameters.update({
        "BatchSize": _number(settings.batch_size, 1, 10000, "Records per invocation, per trigger"),
        "MaximumBatchingWindowInSeconds": _number(settings.batching_window, 0, 300,
                                                  "Seconds to gather records before invoking"),
        "MaximumRetryAttempts": _number(settings.max_retries, 0, 10000,
                                        "Retries of a failing batch before it goes to the failure queue"),
        "MaximumRecordAgeInSeconds": _number(settings.max_record_age, 60, 604800,
                                             "Age after which a failing record goes to the failure queue"),
        "StartingPosition": {"Type": "String", "Default": settings.starting_position,
                             "AllowedValues": ["TRIM_HORIZON", "LATEST"]},
        "SubnetIds": {"Type": "CommaDelimitedList", "Default": "",
                      "Description": "Subnets that reach the database; empty: the function runs outside any VPC"},
        "SecurityGroupIds": {"Type": "CommaDelimitedList", "Default": "",
                             "Description": "Security groups of the function, with SubnetIds"},
        "LagAlarmThresholdMs": _number(settings.lag_alarm_ms, 1000, 86400000,
                                       "Replication lag (ms) that raises a route's lag alarm"),
        "AlarmTopicArn": {"Type": "String", "Default": "", "Description": "SNS topic for the alarms (optional)"},
        "LogRetentionInDays": {"Type": "Number", "Default": 30, "AllowedValues": LOG_RETENTION_DAYS},
    })
    return parameters


def _role(triggers: dict[str, str], secrets: list[Any]) -> dict[str, Any]:
    statements: list[Any] = [
        {"Sid": "ReadStreams", "Effect": "Allow", "Action": STREAM_ACTIONS,
         "Resource": [ref(event + "Arn") for event in triggers.values()]},
        *([{"Sid": "ReadSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
            "Resource": secrets}] if secrets else []),
        {"Sid": "SendToFailureQueue", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": get_att("FailureQueue", "Arn")},
        {"Sid": "WriteLogsAndMetrics", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": get_att("FunctionLogGroup", "Arn")},
        {"Fn::If": ["HasSubnets", {"Sid": "AttachToVpc", "Effect": "Allow", "Action": VPC_ACTIONS, "Resource": "*"},
                    ref("AWS::NoValue")]},
    ]
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "cdc-router", "PolicyDocument": {"Version": "2012-10-17",
                                                                     "Statement": statements}}],
    }}


def _function(settings: Settings, triggers: dict[str, str], env: list[EnvReference]) -> dict[str, Any]:
    variables: dict[str, Any] = {"POWERTOOLS_SERVICE_NAME": SERVICE, "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
                                 "POWERTOOLS_LOG_LEVEL": "INFO"}
    variables.update({reference.var: ref(reference.parameter) for reference in env})
    return {"Type": "AWS::Serverless::Function", "Properties": {
        "CodeUri": settings.code_uri, "Handler": HANDLER, "Runtime": RUNTIME,
        "Architectures": [settings.architecture], "MemorySize": settings.memory_mb, "Timeout": settings.timeout_s,
        "Role": get_att("FunctionRole", "Arn"),
        "LoggingConfig": {"LogGroup": ref("FunctionLogGroup"), "LogFormat": "Text"},
        "Environment": {"Variables": variables},
        "VpcConfig": {"Fn::If": ["HasSubnets", {"SubnetIds": ref("SubnetIds"),
                                                "SecurityGroupIds": ref("SecurityGroupIds")}, ref("AWS::NoValue")]},
        "Events": {event: _trigger(event) for event in triggers.values()},
    }}


def _trigger(event: str) -> dict[str, Any]:
    return {"Type": "DynamoDB", "Properties": {
        "Stream": ref(event + "Arn"),
        "StartingPosition": ref("StartingPosition"),
        "BatchSize": ref("BatchSize"),
        "MaximumBatchingWindowInSeconds": ref("MaximumBatchingWindowInSeconds"),
        "MaximumRetryAttempts": ref("MaximumRetryAttempts"),
        "MaximumRecordAgeInSeconds": ref("MaximumRecordAgeInSeconds"),
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": get_att("FailureQueue", "Arn")}},
    }}


def _route_alarms(route: str, prefix: str) -> dict[str, Any]:
    dimensions = [("service", SERVICE), ("route", route)]
    return {
        prefix + "LagAlarm": _alarm(f"Route {route} is behind its stream by more than LagAlarmThresholdMs",
                                    NAMESPACE, LAG, dimensions, "Maximum", ref("LagAlarmThresholdMs"),
                                    period=60, periods=5, datapoints=3, operator="GreaterThanThreshold"),
        prefix + "FailedAlarm": _alarm(f"Route {route}: records failed and are being retried",
                                       NAMESPACE, COUNTS["failed"], dimensions, "Sum", 1),
        prefix + "DeadLetteredAlarm": _alarm(f"Route {route}: records were dead-lettered (cdc-router dead-letters list)",
                                             NAMESPACE, COUNTS["dead_lettered"], dimensions, "Sum", 1),
    }


def _alarm(description: str, namespace: str, metric: str, dimensions: list[tuple[str, Any]], statistic: str,
           threshold: Any, period: int = 300, periods: int = 1, datapoints: int = 1,
           operator: str = "GreaterThanOrEqualToThreshold") -> dict[str, Any]:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, "Namespace": namespace, "MetricName": metric,
        "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions],
        "Statistic": statistic, "Period": period, "EvaluationPeriods": periods, "DatapointsToAlarm": datapoints,
        "Threshold": threshold, "ComparisonOperator": operator, "TreatMissingData": "notBreaching",
        "AlarmActions": {"Fn::If": ["HasAlarmTopic", [ref("AlarmTopicArn")], ref("AWS::NoValue")]},
    }}
