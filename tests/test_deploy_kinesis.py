"""The SAM template for Kinesis routes: one trigger per Kinesis data stream (not per table), its
ARN a parameter, the Kinesis-only settings, and the role allowed to read exactly those streams."""

from __future__ import annotations

from pathlib import Path

import yaml
from samtranslator.translator.transform import transform
from test_deploy_template import TRIGGER_SETTINGS, _NoManagedPolicies, cfn_lint, render, statements

from handlers import sam_template

TWO_TABLES_ON_ONE_STREAM = """
version: 1
sinks:
  aurora: {type: postgres, secret: prod/cdc-router}
routes:
  employees:
    source: Employees
    kinesis: changes
    version: approximate_creation_time
    sink: aurora
    table: public.employees
    key: [Id]
    columns: {Id: {type: bigint}}
  orders:
    source: Orders
    kinesis: changes
    version: {attribute: updatedAt}
    sink: aurora
    table: sales.orders
    key: [id]
    columns: {id: {type: text}}
"""
WITH_A_DYNAMODB_STREAM = TWO_TABLES_ON_ONE_STREAM + """
  customers:
    source: Customers
    sink: aurora
    table: crm.customers
    key: [id]
    columns: {id: {type: text}}
"""


def test_two_tables_on_one_kinesis_stream_give_one_kinesis_trigger(tmp_path: Path) -> None:
    # GIVEN two tables whose changes go to the Kinesis data stream 'changes' WHEN the template is rendered
    template = render(tmp_path, TWO_TABLES_ON_ONE_STREAM)
    # THEN one Kinesis trigger with the failure handling settings and the Kinesis-only ones
    events = template["Resources"]["Function"]["Properties"]["Events"]
    assert list(events) == ["ChangesStream"]
    assert events["ChangesStream"] == {"Type": "Kinesis", "Properties": {
        "Stream": {"Ref": "ChangesStreamArn"}, **TRIGGER_SETTINGS,
        "StartingPosition": {"Ref": "KinesisStartingPosition"},
        "StartingPositionTimestamp": {"Fn::If": ["IsAtTimestamp", {"Ref": "KinesisStartingPositionTimestamp"},
                                                 {"Ref": "AWS::NoValue"}]},
        "ParallelizationFactor": {"Ref": "ParallelizationFactor"}}}
    parameters = template["Parameters"]
    assert parameters["ChangesStreamArn"]["AllowedPattern"].endswith(":stream/changes")
    assert "Employees, Orders" in parameters["ChangesStreamArn"]["Description"]
    assert parameters["KinesisStartingPosition"]["AllowedValues"] == ["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
    assert (parameters["ParallelizationFactor"]["MinValue"], parameters["ParallelizationFactor"]["MaxValue"]) == (1, 10)
    assert "StartingPosition" not in parameters  # no DynamoDB Streams trigger left to use it
    # AND the role reads exactly that stream, decrypts only with a key given, and reads no DynamoDB stream
    granted = statements(template)
    assert "ReadStreams" not in granted
    assert granted["ReadKinesisStreams"]["Resource"] == [{"Ref": "ChangesStreamArn"}]
    assert set(granted["ReadKinesisStreams"]["Action"]) == {
        "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator",
        "kinesis:ListShards"}
    assert granted["DecryptKinesisStreams"] == {"Fn::If": ["HasKinesisKmsKey", {
        "Sid": "DecryptKinesisStreams", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Ref": "KinesisKmsKeyArn"}},
        {"Ref": "AWS::NoValue"}]}


def test_kinesis_and_dynamodb_streams_triggers_side_by_side(tmp_path: Path) -> None:
    template = render(tmp_path, WITH_A_DYNAMODB_STREAM)
    events = template["Resources"]["Function"]["Properties"]["Events"]
    assert {name: event["Type"] for name, event in events.items()} == {"CustomersStream": "DynamoDB",
                                                                        "ChangesStream": "Kinesis"}
    granted = statements(template)
    assert granted["ReadStreams"]["Resource"] == [{"Ref": "CustomersStreamArn"}]
    assert granted["ReadKinesisStreams"]["Resource"] == [{"Ref": "ChangesStreamArn"}]
    assert template["Description"] == ("cdc-router: DynamoDB Streams of Customers and Kinesis data streams changes "
                                       "replicated by one function")


def test_cfn_lint_passes_on_kinesis_templates_and_their_cloudformation_translation(tmp_path: Path) -> None:
    for name, text in (("kinesis", TWO_TABLES_ON_ONE_STREAM), ("both", WITH_A_DYNAMODB_STREAM)):
        template = render(tmp_path, text)
        cfn_lint(sam_template.write(template, tmp_path / f"{name}.yaml"))
        template["Resources"]["Function"]["Properties"]["CodeUri"] = "s3://artifacts/cdc-router-lambda.zip"
        translated = transform(template, {}, _NoManagedPolicies())
        mappings = [r["Properties"] for r in translated["Resources"].values()
                    if r["Type"] == "AWS::Lambda::EventSourceMapping"]
        kinesis = [m for m in mappings if m["EventSourceArn"] == {"Ref": "ChangesStreamArn"}]
        assert len(kinesis) == 1 and kinesis[0]["ParallelizationFactor"] == {"Ref": "ParallelizationFactor"}
        path = tmp_path / f"{name}-translated.yaml"
        path.write_text(yaml.safe_dump(translated))
        cfn_lint(path)
