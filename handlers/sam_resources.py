"""The function, its role, its triggers and its failure queue (``handlers.sam_template`` decides what goes in).

The template is assembled here from its parts: parameters and conditions
(``sam_parameters``), alarms (``sam_alarms``), the dashboard (``sam_dashboard``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from handlers import sam_alarms, sam_dashboard, sam_parameters
from handlers.sam_intrinsics import get_att, if_, ref, sub
from handlers.sam_settings import DbUser, EnvReference, Settings

HANDLER = "handlers.lambda_handler.handler"
STREAM_ACTIONS = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                  "dynamodb:ListStreams"]
# What Lambda needs to attach the function to a VPC (AWSLambdaVPCAccessExecutionRole, written
# out). EC2 supports no resource-level permissions for the Describe actions, hence "*".
VPC_ACTIONS = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
               "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
RESOURCES = ("FailureQueue", "FunctionLogGroup", "FunctionRole", "Function", "Dashboard", "FunctionErrorsAlarm",
             "FunctionThrottlesAlarm", "IteratorAgeAlarm", "NoInvocationsAlarm", "FailureQueueAlarm")
FIXED_NAMES = sam_parameters.NAMES + sam_parameters.CONDITIONS + RESOURCES


def failure_handling() -> dict[str, Any]:
    """Every trigger's (DynamoDB Streams and Kinesis): partial batch responses, bisection, the on-failure
    destination (no "Type": the role grants what it needs, SAM adds nothing), and EventCount metrics.
    Fresh dicts each time: a dict shared by two triggers would be dumped as a YAML alias."""
    return {
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MetricsConfig": {"Metrics": ["EventCount"]},
        "DestinationConfig": {"OnFailure": {"Destination": if_("HasFailureBucket", ref("FailureBucketArn"),
                                                               get_att("FailureQueue", "Arn"))}},
    }


def secret_arn(name: str) -> Any:
    """A secret's ARN from its name: Secrets Manager appends '-' and six random characters."""
    if name.startswith("arn:"):
        return sub(name) if "${" in name else name
    return sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" + name + "-??????")


def template(settings: Settings, triggers: dict[str, str], alarms: dict[str, str],
             env: Iterable[EnvReference], secrets: list[Any], db_users: Iterable[DbUser] = (),
             access: Iterable[Any] = ()) -> dict[str, Any]:
    """``triggers``: source table -> event id; ``alarms``: route -> alarm id prefix; ``access``: more
    statements of the role (the Data API access of Redshift sinks)."""
    env, db_users = list(env), list(db_users)
    resources: dict[str, Any] = {
        # Kept when the stack goes: the queue may hold batches still to replay, the log group their causes.
        "FailureQueue": {"Type": "AWS::SQS::Queue", **RETAIN,
                         "Properties": {"MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}},
        "FunctionLogGroup": {"Type": "AWS::Logs::LogGroup", **RETAIN,
                             "Properties": {"RetentionInDays": ref("LogRetentionInDays")}},
        "FunctionRole": _role(triggers, secrets, db_users, list(access)),
        "Function": _function(settings, triggers, env),
        "Dashboard": sam_dashboard.dashboard(alarms),
        **sam_alarms.function_alarms(),
    }
    for route, prefix in alarms.items():
        resources.update(sam_alarms.route_alarms(route, prefix))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "cdc-router: DynamoDB Streams of " + ", ".join(triggers) + " replicated by one function",
        "Parameters": sam_parameters.parameters(settings, triggers, env, db_users),
        "Conditions": sam_parameters.conditions(),
        "Resources": resources,
        "Outputs": {
            "FunctionName": {"Value": ref("Function")},
            "FailureQueueUrl": {"Value": ref("FailureQueue")},
            "FunctionLogGroupName": {"Value": ref("FunctionLogGroup")},
            "DashboardName": {"Value": ref("Dashboard")},
        },
    }


def _role(triggers: dict[str, str], secrets: list[Any], db_users: list[DbUser], access: list[Any]) -> dict[str, Any]:
    statements: list[Any] = [
        {"Sid": "ReadStreams", "Effect": "Allow", "Action": STREAM_ACTIONS,
         "Resource": [ref(event + "Arn") for event in triggers.values()]},
        *([{"Sid": "ReadSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
            "Resource": secrets}] if secrets else []),
        *([{"Sid": "ConnectWithIam", "Effect": "Allow", "Action": "rds-db:connect",
            "Resource": [_db_user_arn(user) for user in db_users]}] if db_users else []),
        {"Sid": "SendToFailureQueue", "Effect": "Allow", "Action": "sqs:SendMessage",
         "Resource": get_att("FailureQueue", "Arn")},
        if_("HasFailureBucket", {"Sid": "WriteFailureBucket", "Effect": "Allow",
                                 "Action": ["s3:PutObject", "s3:ListBucket"],
                                 "Resource": [ref("FailureBucketArn"), sub("${FailureBucketArn}/*")]}),
        {"Sid": "WriteLogsAndMetrics", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": get_att("FunctionLogGroup", "Arn")},
        if_("HasSubnets", {"Sid": "AttachToVpc", "Effect": "Allow", "Action": VPC_ACTIONS, "Resource": "*"}),
        *access,
    ]
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "cdc-router", "PolicyDocument": {"Version": "2012-10-17",
                                                                     "Statement": statements}}],
    }}


def _db_user_arn(user: DbUser) -> Any:
    """https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.IAMPolicy.html"""
    return sub("arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${" + user.parameter + "}/"
               + user.user)


def _function(settings: Settings, triggers: dict[str, str], env: list[EnvReference]) -> dict[str, Any]:
    # The stack's name is the metrics' service: two stacks in one account never share a metric or an alarm.
    variables: dict[str, Any] = {"POWERTOOLS_SERVICE_NAME": ref("AWS::StackName"),
                                 "POWERTOOLS_METRICS_NAMESPACE": sam_alarms.NAMESPACE, "POWERTOOLS_LOG_LEVEL": "INFO"}
    variables.update({reference.var: ref(reference.parameter) for reference in env})
    return {"Type": "AWS::Serverless::Function", "Properties": {
        "CodeUri": settings.code_uri, "Handler": HANDLER, "Runtime": settings.runtime,
        "Architectures": [settings.architecture], "MemorySize": ref("MemorySize"), "Timeout": ref("Timeout"),
        "ReservedConcurrentExecutions": if_("HasReservedConcurrency", ref("ReservedConcurrency")),
        "Role": get_att("FunctionRole", "Arn"),
        "LoggingConfig": {"LogGroup": ref("FunctionLogGroup"), "LogFormat": "Text"},
        "Environment": {"Variables": variables},
        "VpcConfig": if_("HasSubnets", {"SubnetIds": ref("SubnetIds"), "SecurityGroupIds": ref("SecurityGroupIds")}),
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
        "ParallelizationFactor": ref("ParallelizationFactor"),
        **failure_handling(),
    }}
