"""`cdc-router template` grants each Redshift sink exactly the Data API access its options need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_deploy_template import cfn_lint, render, statements

from handlers import sam_template

CONFIG = """
version: 1
sinks:
  warehouse:
    type: redshift
    {options}
routes:
  employees:
    source: Employees
    sink: warehouse
    table: public.employees
    key: [id]
    columns: {{id: {{type: bigint}}}}
"""
CLUSTER = "arn:${AWS::Partition}:redshift:${AWS::Region}:${AWS::AccountId}:"
WORKGROUPS = {"Fn::Sub": "arn:${AWS::Partition}:redshift-serverless:${AWS::Region}:${AWS::AccountId}:workgroup/*"}
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:warehouse-AbCdEf"
POLL = {"Sid": "RedshiftWarehousePoll", "Effect": "Allow",
        "Action": ["redshift-data:DescribeStatement", "redshift-data:CancelStatement"], "Resource": "*",
        "Condition": {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}}


def run(resource: Any) -> dict[str, Any]:
    return {"Sid": "RedshiftWarehouseRun", "Effect": "Allow", "Action": "redshift-data:BatchExecuteStatement",
            "Resource": resource}


def authenticate(action: str, resource: Any) -> dict[str, Any]:
    return {"Sid": "RedshiftWarehouseAuthenticate", "Effect": "Allow", "Action": action, "Resource": resource}


@pytest.mark.parametrize("options, expected", [
    # Serverless, as the Lambda's role (database user IAMR:<role>)
    ("workgroup: analytics\n    database: dev",
     [run(WORKGROUPS), authenticate("redshift-serverless:GetCredentials", WORKGROUPS)]),
    # Serverless, with a secret: the secret, and no GetCredentials
    (f"workgroup: analytics\n    database: dev\n    secret_arn: {SECRET}",
     [run(WORKGROUPS), authenticate("secretsmanager:GetSecretValue", {"Fn::Sub": SECRET})]),
    # a cluster, as a database user: that user, that database
    ("cluster_identifier: reporting\n    database: dev\n    db_user: loader",
     [run({"Fn::Sub": CLUSTER + "cluster:reporting"}), authenticate("redshift:GetClusterCredentials", [
         {"Fn::Sub": CLUSTER + "dbuser:reporting/loader"}, {"Fn::Sub": CLUSTER + "dbname:reporting/dev"}])]),
    # a cluster, as the Lambda's role
    ("cluster_identifier: reporting\n    database: dev",
     [run({"Fn::Sub": CLUSTER + "cluster:reporting"}),
      authenticate("redshift:GetClusterCredentialsWithIAM", {"Fn::Sub": CLUSTER + "dbname:reporting/dev"})]),
    # a cluster in another Region, named through a variable: the grant follows the stack's parameter
    ("cluster_identifier: ${CLUSTER:-reporting}\n    database: dev\n    region: eu-west-1",
     [run({"Fn::Sub": "arn:${AWS::Partition}:redshift:eu-west-1:${AWS::AccountId}:cluster:${Cluster}"}),
      authenticate("redshift:GetClusterCredentialsWithIAM",
                   {"Fn::Sub": "arn:${AWS::Partition}:redshift:eu-west-1:${AWS::AccountId}:dbname:${Cluster}/dev"})]),
])
def test_each_way_to_connect_is_granted_exactly_what_it_calls(tmp_path: Path, options: str,
                                                              expected: list[dict[str, Any]]) -> None:
    granted = {sid: s for sid, s in statements(render(tmp_path, CONFIG.format(options=options))).items()
               if sid.startswith("Redshift")}
    assert granted == {s["Sid"]: s for s in [expected[0], POLL, expected[1]]}


def test_the_template_with_redshift_sinks_lints_clean(tmp_path: Path) -> None:
    text = CONFIG.format(options=f"workgroup: analytics\n    database: dev\n    secret_arn: {SECRET}")
    text = text.replace("routes:", "  reporting:\n    type: redshift\n    cluster_identifier: reporting\n"
                                   "    database: dev\n    db_user: loader\nroutes:")
    template = render(tmp_path, text)
    assert {sid for sid in statements(template) if sid.startswith("Redshift")} == {
        f"Redshift{sink}{what}" for sink in ("Warehouse", "Reporting") for what in ("Run", "Poll", "Authenticate")}
    cfn_lint(sam_template.write(template, tmp_path / "template.yaml"))
