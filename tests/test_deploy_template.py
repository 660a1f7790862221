"""The SAM template rendered from tables.yaml: triggers, IAM, alarms, and two linters' verdicts.

cfn-lint validates the SAM template against SAM's schemas, which do not look inside
intrinsic functions; so the template is also translated to plain CloudFormation by the
SAM translator (what `sam deploy` runs) and the result linted against CloudFormation's
resource schemas (``AWS::Lambda::EventSourceMapping`` and the rest).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from samtranslator.translator.transform import transform

from handlers import sam_template
from handlers.cli import app
from handlers.observability import COUNTS
from router.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
THREE_TABLES = """
version: 1
sinks:
  aurora: {type: postgres, secret: prod/cdc-router}
routes:
  employees:
    source: Employees
    sink: aurora
    table: public.employees
    key: [Id]
    columns: {Id: {type: bigint}}
  orders:
    source: Orders
    sink: aurora
    table: sales.orders
    key: [id]
    columns: {id: {type: text}}
  order_lines:                      # a second route of Orders: still one trigger for Orders
    source: Orders
    sink: aurora
    table: sales.order_lines
    key: [id]
    columns: {id: {type: text}}
  customers:
    source: crm.Customers-v2        # table names may hold '.', '-' and '_'
    sink: aurora
    table: crm.customers
    key: [id]
    columns: {id: {type: text}}
"""
TRIGGER_SETTINGS = {
    "StartingPosition": {"Ref": "StartingPosition"},
    "BatchSize": {"Ref": "BatchSize"},
    "MaximumBatchingWindowInSeconds": {"Ref": "MaximumBatchingWindowInSeconds"},
    "MaximumRetryAttempts": {"Ref": "MaximumRetryAttempts"},
    "MaximumRecordAgeInSeconds": {"Ref": "MaximumRecordAgeInSeconds"},
    "ParallelizationFactor": {"Ref": "ParallelizationFactor"},
    "BisectBatchOnFunctionError": True,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "MetricsConfig": {"Metrics": ["EventCount"]},
    # the failure queue, or an S3 bucket when FailureBucketArn is set
    "DestinationConfig": {"OnFailure": {"Destination": {"Fn::If": [
        "HasFailureBucket", {"Ref": "FailureBucketArn"}, {"Fn::GetAtt": ["FailureQueue", "Arn"]}]}}},
}
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:{}-??????"


def render(tmp_path: Path, text: str, allow_dsn_password: bool = False, **settings: Any) -> dict[str, Any]:
    path = tmp_path / "tables.yaml"
    path.write_text(textwrap.dedent(text))
    return sam_template.render(path, sam_template.Settings(**settings), allow_dsn_password)


def statements(template: dict[str, Any]) -> dict[str, Any]:
    policy = template["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    return {s.get("Sid") or s["Fn::If"][1]["Sid"]: s for s in policy["Statement"]}


def cfn_lint(path: Path) -> None:
    done = subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_three_source_tables_give_three_triggers_with_the_failure_handling_settings(tmp_path: Path) -> None:
    template = render(tmp_path, THREE_TABLES)
    events = template["Resources"]["Function"]["Properties"]["Events"]
    assert set(events) == {"EmployeesStream", "OrdersStream", "CrmCustomersV2Stream"}
    for name, event in events.items():
        assert event["Type"] == "DynamoDB"
        assert event["Properties"] == {"Stream": {"Ref": name + "Arn"}, **TRIGGER_SETTINGS}
    parameters = template["Parameters"]
    assert parameters["CrmCustomersV2StreamArn"]["AllowedPattern"].endswith(r":table/crm\.Customers\-v2/stream/.+")
    assert {k: parameters[k]["Default"] for k in ("BatchSize", "MaximumBatchingWindowInSeconds",
                                                  "MaximumRetryAttempts", "MaximumRecordAgeInSeconds",
                                                  "StartingPosition")} == {
        "BatchSize": 100, "MaximumBatchingWindowInSeconds": 1, "MaximumRetryAttempts": 10,
        "MaximumRecordAgeInSeconds": 86400, "StartingPosition": "TRIM_HORIZON"}
    # bounded: neither retries nor record age can be set to -1 (infinite)
    assert parameters["MaximumRetryAttempts"]["MinValue"] == 0
    assert parameters["MaximumRecordAgeInSeconds"]["MinValue"] == 60


def test_removing_a_route_removes_its_trigger_and_its_stream_grant(tmp_path: Path) -> None:
    without_customers = THREE_TABLES[: THREE_TABLES.index("  customers:")]
    template = render(tmp_path, without_customers)
    assert set(template["Resources"]["Function"]["Properties"]["Events"]) == {"EmployeesStream", "OrdersStream"}
    assert "CrmCustomersV2StreamArn" not in template["Parameters"]
    assert statements(template)["ReadStreams"]["Resource"] == [{"Ref": "EmployeesStreamArn"},
                                                              {"Ref": "OrdersStreamArn"}]
    assert not any(name.startswith("Customers") for name in template["Resources"])


def test_the_role_names_exactly_the_configured_streams_secret_queue_and_log_group(tmp_path: Path) -> None:
    template = render(tmp_path, THREE_TABLES)
    role = template["Resources"]["FunctionRole"]["Properties"]
    assert "ManagedPolicyArns" not in role and len(role["Policies"]) == 1
    assert statements(template) == {
        "ReadStreams": {"Sid": "ReadStreams", "Effect": "Allow", "Action": [
            "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
            "Resource": [{"Ref": "EmployeesStreamArn"}, {"Ref": "OrdersStreamArn"},
                         {"Ref": "CrmCustomersV2StreamArn"}]},
        "ReadSecrets": {"Sid": "ReadSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                        "Resource": [{"Fn::Sub": SECRET_ARN.replace("{}", "prod/cdc-router")}]},
        "SendToFailureQueue": {"Sid": "SendToFailureQueue", "Effect": "Allow", "Action": "sqs:SendMessage",
                               "Resource": {"Fn::GetAtt": ["FailureQueue", "Arn"]}},
        "WriteFailureBucket": {"Fn::If": ["HasFailureBucket", {
            "Sid": "WriteFailureBucket", "Effect": "Allow", "Action": ["s3:PutObject", "s3:ListBucket"],
            "Resource": [{"Ref": "FailureBucketArn"}, {"Fn::Sub": "${FailureBucketArn}/*"}]}, {"Ref": "AWS::NoValue"}]},
        "WriteLogsAndMetrics": {"Sid": "WriteLogsAndMetrics", "Effect": "Allow",
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                "Resource": {"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}},
        "AttachToVpc": {"Fn::If": ["HasSubnets", {"Sid": "AttachToVpc", "Effect": "Allow", "Action": [
            "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
            "Resource": "*"}, {"Ref": "AWS::NoValue"}]},
    }
    vpc = template["Resources"]["Function"]["Properties"]["VpcConfig"]
    assert vpc["Fn::If"][0] == "HasSubnets" and vpc["Fn::If"][2] == {"Ref": "AWS::NoValue"}


def test_a_secret_named_through_a_variable_is_a_parameter_and_the_grant_follows_it(tmp_path: Path) -> None:
    text = THREE_TABLES.replace("secret: prod/cdc-router", "secret: \"${DB_SECRET:-prod/rds}\", "
                                                           "statement_timeout_ms: 5000")
    text = text.replace("table: sales.orders", "table: ${ORDERS_SCHEMA:-sales}.orders  # ${NOT_A_REFERENCE}")
    template = render(tmp_path, text)
    assert template["Parameters"]["DbSecret"] == {"Type": "String", "Description": "${DB_SECRET} in tables.yaml",
                                                  "Default": "prod/rds"}
    assert template["Parameters"]["OrdersSchema"]["NoEcho"] is True  # not a secret's name: could be anything
    assert "NotAReference" not in template["Parameters"]
    assert statements(template)["ReadSecrets"]["Resource"] == [{"Fn::Sub": SECRET_ARN.replace("{}", "${DbSecret}")}]
    variables = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert variables["DB_SECRET"] == {"Ref": "DbSecret"} and variables["ORDERS_SCHEMA"] == {"Ref": "OrdersSchema"}


def test_alarms_watch_each_route_and_a_function_that_fails_falls_behind_is_throttled_or_stops(
        tmp_path: Path) -> None:
    resources = render(tmp_path, THREE_TABLES)["Resources"]
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert len(alarms) == 5 + 3 * 4
    # per route: the stack's name is the metrics' service, so two stacks never share an alarm
    lag = alarms["OrderLinesRouteLagAlarm"]
    assert (lag["Namespace"], lag["MetricName"], lag["Statistic"], lag["Threshold"]) == (
        "CdcRouter", "ReplicationLagMs", "Maximum", {"Ref": "LagAlarmThresholdMs"})
    assert lag["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}},
                                 {"Name": "route", "Value": "order_lines"}]
    variables = resources["Function"]["Properties"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    assert alarms["OrderLinesRouteFailedAlarm"]["MetricName"] == "RecordsFailed"
    assert alarms["OrderLinesRouteDeadLetteredAlarm"]["MetricName"] == "RecordsDeadLettered"
    # the function: errors (a database outage raises), throttles, iterator age, silence
    function = [{"Name": "FunctionName", "Value": {"Ref": "Function"}}]
    assert {name: (a["Namespace"], a["MetricName"], a["Statistic"], a["TreatMissingData"])
            for name, a in alarms.items() if a["Dimensions"] == function} == {
        "FunctionErrorsAlarm": ("AWS/Lambda", "Errors", "Sum", "notBreaching"),
        "FunctionThrottlesAlarm": ("AWS/Lambda", "Throttles", "Sum", "notBreaching"),
        "IteratorAgeAlarm": ("AWS/Lambda", "IteratorAge", "Maximum", "notBreaching"),
        # a disabled trigger emits nothing: only missing data as breaching sees it
        "NoInvocationsAlarm": ("AWS/Lambda", "Invocations", "Sum", "breaching"),
    }
    assert alarms["IteratorAgeAlarm"]["Threshold"] == {"Ref": "IteratorAgeAlarmThresholdMs"}
    silent = resources["NoInvocationsAlarm"]
    assert silent["Condition"] == "HasNoInvocationsAlarm"  # off by default: quiet tables are not an outage
    assert silent["Properties"]["EvaluationPeriods"] == {"Ref": "NoInvocationsAlarmMinutes"}
    assert alarms["FailureQueueAlarm"]["MetricName"] == "ApproximateNumberOfMessagesVisible"


def test_memory_timeout_concurrency_and_parallelization_are_parameters(tmp_path: Path) -> None:
    template = render(tmp_path, THREE_TABLES, memory_mb=1024, timeout_s=120, python_version="3.13")
    function = template["Resources"]["Function"]["Properties"]
    parameters = template["Parameters"]
    assert (function["MemorySize"], function["Timeout"]) == ({"Ref": "MemorySize"}, {"Ref": "Timeout"})
    assert (parameters["MemorySize"]["Default"], parameters["Timeout"]["Default"]) == (1024, 120)
    assert function["Runtime"] == "python3.13"
    # 0 leaves the function unreserved (a reservation of 0 would stop it)
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert template["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, 0]}]}
    assert (parameters["ParallelizationFactor"]["MinValue"], parameters["ParallelizationFactor"]["MaxValue"]) == (1, 10)


def test_the_failure_queue_and_the_log_group_outlive_the_stack(tmp_path: Path) -> None:
    resources = render(tmp_path, THREE_TABLES)["Resources"]
    for name in ("FailureQueue", "FunctionLogGroup"):
        assert (resources[name]["DeletionPolicy"], resources[name]["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_the_dashboard_shows_the_function_and_every_outcome_and_the_lag_of_each_route(tmp_path: Path) -> None:
    resources = render(tmp_path, THREE_TABLES)["Resources"]
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body)["widgets"]
    metrics = {(m[0], m[1], m[3] if m[0] == "AWS/Lambda" else m[5]) for w in widgets for m in w["properties"]["metrics"]}
    function = {("AWS/Lambda", name, "${Function}")
                for name in ("IteratorAge", "Errors", "Throttles", "ConcurrentExecutions", "Duration")}
    routes = {("CdcRouter", name, route) for route in ("employees", "orders", "order_lines", "customers")
              for name in (*COUNTS.values(), "ReplicationLagMs")}
    assert {"RecordsApplied", "RecordsStale", "RecordsDeleted", "RecordsDeadLettered", "RecordsFailed"} <= set(
        COUNTS.values())
    assert metrics == function | routes
    assert {m[3] for w in widgets for m in w["properties"]["metrics"] if m[0] == "CdcRouter"} == {"${AWS::StackName}"}


@pytest.mark.parametrize("dsn, refused", [
    ("${DATABASE_URL}", "comes whole from a ${VAR}"),              # a NoEcho parameter, yet in the environment
    ("postgresql://cdc:s3cret@db.example/app", "holds a password"),
    ("host=db.example user=cdc password=s3cret dbname=app", "holds a password"),
    ("host=${DB_HOST} user=cdc dbname=app", None),                  # no password anywhere: nothing to expose
])
def test_a_password_in_the_functions_configuration_is_refused_unless_allowed(
        tmp_path: Path, dsn: str, refused: str | None) -> None:
    text = THREE_TABLES.replace("{type: postgres, secret: prod/cdc-router}", f'{{type: postgres, dsn: "{dsn}"}}')
    if refused is None:
        render(tmp_path, text)
        return
    with pytest.raises(ConfigError, match=re.escape(f"sinks.aurora.dsn: {refused}")) as caught:
        render(tmp_path, text)
    assert "s3cret" not in str(caught.value)
    assert render(tmp_path, text, allow_dsn_password=True)["Resources"]["Function"]


def test_iam_database_authentication_grants_rds_db_connect_for_the_dsns_user(tmp_path: Path) -> None:
    text = THREE_TABLES.replace("{type: postgres, secret: prod/cdc-router}", (
        '{type: postgres, iam_auth: true, dsn: "host=proxy.example port=5432 user=${DB_USER:-cdc} dbname=app"}'))
    template = render(tmp_path, text)
    assert statements(template)["ConnectWithIam"] == {"Sid": "ConnectWithIam", "Effect": "Allow",
                                                      "Action": "rds-db:connect", "Resource": [{"Fn::Sub": (
        "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${AuroraDbResourceId}/${DbUser}")}]}
    assert template["Parameters"]["AuroraDbResourceId"]["AllowedPattern"] == "(db|cluster|prx)-[A-Za-z0-9]+"
    assert "ReadSecrets" not in statements(template)


WITH_A_REDSHIFT_ROUTE = THREE_TABLES.replace("sinks:\n", "sinks:\n  warehouse: {type: redshift, workgroup: analytics, "
                                                             "database: dev}\n").replace(
    "    sink: aurora\n    table: crm.customers", "    sink: warehouse\n    table: crm.customers")


@pytest.mark.parametrize("config", [THREE_TABLES, WITH_A_REDSHIFT_ROUTE])
def test_cfn_lint_passes_on_the_sam_template_and_on_its_cloudformation_translation(tmp_path: Path, config: str) -> None:
    template = render(tmp_path, config, architecture="arm64")
    cfn_lint(sam_template.write(template, tmp_path / "template.yaml"))
    # GIVEN the zip uploaded (sam deploy puts an S3 URI in CodeUri) WHEN SAM translates the template
    template["Resources"]["Function"]["Properties"]["CodeUri"] = "s3://artifacts/cdc-router-lambda.zip"
    translated = transform(template, {}, _NoManagedPolicies())
    # THEN one event source mapping per source table, the role untouched, and a clean lint
    mappings = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 3
    assert translated["Resources"]["FunctionRole"] == template["Resources"]["FunctionRole"]
    path = tmp_path / "translated.yaml"
    path.write_text(yaml.safe_dump(translated))
    cfn_lint(path)


def test_the_committed_template_is_the_rendering_of_the_shipped_config() -> None:
    cfn_lint(ROOT / "deploy" / "template.yaml")
    rendered = sam_template.render(ROOT / "config" / "tables.yaml")
    assert (ROOT / "deploy" / "template.yaml").read_text() == sam_template.dump(rendered), \
        "deploy/template.yaml is stale: run `cdc-router template`"
    assert "&id0" not in sam_template.dump(rendered), "a dict shared by two places is dumped as a YAML alias"


@pytest.mark.parametrize("table, expected", [
    ("Employees", "EmployeesStream"),
    ("my-table", "MyTableStream"),        # characters a logical id cannot hold separate words
    ("crm.orders_v2", "CrmOrdersV2Stream"),
])
def test_trigger_names_are_logical_ids(table: str, expected: str) -> None:
    assert sam_template._Names(()).take(table, "Stream") == expected


def test_two_tables_whose_names_differ_only_in_dropped_characters_get_distinct_triggers() -> None:
    names = sam_template._Names(())
    assert names.take("my_table", "Stream") == "MyTableStream"
    assert names.take("my-table", "Stream") not in ("MyTableStream", "MyTableStreamX")


def test_the_command_writes_the_template_to_stdout_with_the_chosen_settings(tmp_path: Path) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(textwrap.dedent(THREE_TABLES))
    result = CliRunner().invoke(app, ["template", "-c", str(path), "-o", "-", "--arch", "arm64",
                                      "--batch-size", "500", "--max-retries", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    template = yaml.safe_load(result.output)
    assert template["Resources"]["Function"]["Properties"]["Architectures"] == ["arm64"]
    assert template["Parameters"]["BatchSize"]["Default"] == 500
    assert template["Parameters"]["MaximumRetryAttempts"]["Default"] == 3


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        raise AssertionError("the template names no managed policy")
