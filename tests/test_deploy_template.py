"""The SAM template rendered from tables.yaml: triggers, IAM, alarms, and two linters' verdicts.

cfn-lint validates the SAM template against SAM's schemas, which do not look inside
intrinsic functions; so the template is also translated to plain CloudFormation by the
SAM translator (what `sam deploy` runs) and the result linted against CloudFormation's
resource schemas (``AWS::Lambda::EventSourceMapping`` and the rest).
"""

from __future__ import annotations

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
    "BisectBatchOnFunctionError": True,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}},
}
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:{}-??????"


def render(tmp_path: Path, text: str, **settings: Any) -> dict[str, Any]:
    path = tmp_path / "tables.yaml"
    path.write_text(textwrap.dedent(text))
    return sam_template.render(path, sam_template.Settings(**settings))


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


def test_alarms_watch_lag_failed_and_dead_lettered_records_per_route_errors_and_the_failure_queue(
        tmp_path: Path) -> None:
    resources = render(tmp_path, THREE_TABLES)["Resources"]
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert len(alarms) == 2 + 3 * 4
    lag = alarms["OrderLinesRouteLagAlarm"]
    assert (lag["Namespace"], lag["MetricName"], lag["Statistic"], lag["Threshold"]) == (
        "CdcRouter", "ReplicationLagMs", "Maximum", {"Ref": "LagAlarmThresholdMs"})
    assert lag["Dimensions"] == [{"Name": "service", "Value": "cdc-router"}, {"Name": "route", "Value": "order_lines"}]
    assert alarms["OrderLinesRouteFailedAlarm"]["MetricName"] == "RecordsFailed"
    assert alarms["OrderLinesRouteDeadLetteredAlarm"]["MetricName"] == "RecordsDeadLettered"
    assert alarms["FunctionErrorsAlarm"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "Function"}}]
    assert alarms["FailureQueueAlarm"]["MetricName"] == "ApproximateNumberOfMessagesVisible"


def test_cfn_lint_passes_on_the_sam_template_and_on_its_cloudformation_translation(tmp_path: Path) -> None:
    template = render(tmp_path, THREE_TABLES, architecture="arm64")
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
