"""The state machine definition and template.yaml agree, and every failure path cleans up."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ebs_snapshot_local import template

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = json.loads((ROOT / "statemachine" / "ebs_snapshot.asl.json").read_text())
TEMPLATE = template.load(ROOT / "template.yaml")
LAMBDA_TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def all_states(states: dict[str, Any]) -> dict[str, Any]:
    found = dict(states)
    for state in states.values():
        if state["Type"] == "Map":
            found.update(all_states(state["ItemProcessor"]["States"]))
    return found


def test_every_substitution_in_the_definition_is_provided_by_the_template() -> None:
    text = (ROOT / "statemachine" / "ebs_snapshot.asl.json").read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text))
    provided = set(TEMPLATE["Resources"]["UploadStateMachine"]["Properties"]["DefinitionSubstitutions"])
    assert used == provided


def test_every_step_before_the_answer_routes_failures_to_abort() -> None:
    assert DEFINITION["StartAt"] == "Prepare" and DEFINITION["States"]["Prepare"]["ResultPath"] == "$.plan"
    for name in ("Plan", "WriteRanges", "Finish", "CheckSnapshot"):
        catchers = DEFINITION["States"][name]["Catch"]
        assert any("States.ALL" in c["ErrorEquals"] and c["Next"] == "Abort" for c in catchers), name
    assert DEFINITION["States"]["Abort"]["Next"] == "RespondFailure"
    assert DEFINITION["States"]["RespondFailure"]["Next"] == "UploadFailed"


def test_every_lambda_task_retries_transient_lambda_errors() -> None:
    for name, state in all_states(DEFINITION["States"]).items():
        if state["Type"] == "Task":
            retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
            assert LAMBDA_TRANSIENT <= retried or "States.ALL" in retried, name


def test_fan_out_reads_ranges_from_s3_so_no_state_holds_the_plan() -> None:
    write_ranges = DEFINITION["States"]["WriteRanges"]
    assert write_ranges["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert write_ranges["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert write_ranges["ResultPath"] is None
    assert write_ranges["ItemProcessor"]["States"]["WriteRange"]["OutputPath"] is None


def test_waiting_is_a_wait_state_not_a_sleeping_lambda() -> None:
    assert DEFINITION["States"]["WaitForSnapshot"]["Type"] == "Wait"
    assert DEFINITION["States"]["IsCompleted"]["Default"] == "WaitForSnapshot"


def test_lambda_timeouts_stay_well_under_15_minutes() -> None:
    functions = {k: v for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    default = TEMPLATE["Globals"]["Function"]["Timeout"]
    for name, function in functions.items():
        assert function["Properties"].get("Timeout", default) <= 600, name


def test_no_iam_statement_allows_every_action() -> None:
    statements = [
        statement
        for resource in TEMPLATE["Resources"].values()
        for policy in resource.get("Properties", {}).get("Policies", [])
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
    ]
    assert statements
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement["Sid"]


def test_snapshot_deletion_is_limited_to_snapshots_the_provider_tagged() -> None:
    for name in ("ProviderFunction", "PlanFunction", "AbortFunction"):
        statements = [s for p in TEMPLATE["Resources"][name]["Properties"]["Policies"] for s in p["Statement"]]
        deleting = [
            s for s in statements if "ec2:DeleteSnapshot" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        ]
        assert deleting, name
        for statement in deleting:
            assert "aws:ResourceTag/ebs-snapshot-provider:managed-by" in statement["Condition"]["StringEquals"], name


def statements_of(function: str) -> list[dict[str, Any]]:
    return [
        s for p in TEMPLATE["Resources"][function]["Properties"].get("Policies", []) if "Statement" in p for s in p["Statement"]
    ]


def test_image_reads_are_limited_to_the_allowed_buckets() -> None:
    for function in ("PlanFunction", "WriteRangeFunction"):
        reads = [s for s in statements_of(function) if s["Sid"] == "ReadImages"]
        assert reads and reads[0]["Action"] == "s3:GetObject"
        allowed = reads[0]["Resource"]["Fn::If"]
        assert allowed[0] == "UseCdkAssetBucket"
        assert allowed[1] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}/*"}
    everything = [s for f in ("PlanFunction", "WriteRangeFunction", "FinishFunction", "AbortFunction") for s in statements_of(f)]
    for statement in everything:
        if "s3:GetObject" in str(statement["Action"]) and statement["Sid"] != "ReadImages":
            assert "WorkBucket" in str(statement["Resource"]), statement["Sid"]


def test_tagging_and_block_writes_are_limited_to_the_providers_snapshots() -> None:
    guarded = {"ec2:CreateTags", "ec2:DeleteTags", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot"}
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for statement in statements_of(name):
            actions = set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
            if actions & guarded:
                condition = statement["Condition"]["StringEquals"]
                # Tags given at RegisterImage: the image has none yet, so the request must carry ours.
                at_creation = condition.get("ec2:CreateAction") == "RegisterImage" and actions == {"ec2:CreateTags"}
                key = "aws:RequestTag/" if at_creation else "aws:ResourceTag/"
                assert key + "ebs-snapshot-provider:managed-by" in condition, (name, statement["Sid"])


def test_every_function_may_make_the_s3_and_ec2_calls_its_code_makes() -> None:
    """moto does not evaluate IAM, so the emulation cannot catch a missing permission: list them."""
    needed = {
        "PlanFunction": {"s3:GetObject", "s3:PutObject", "ebs:StartSnapshot", "ec2:DeleteSnapshot", "states:DescribeExecution"},
        "WriteRangeFunction": {"s3:GetObject", "s3:PutObject", "ebs:PutSnapshotBlock"},
        "FinishFunction": {
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBucket",
            "ebs:CompleteSnapshot",
            "ec2:DescribeSnapshots",
            "ec2:CreateTags",
        },
        "CheckSnapshotFunction": {"ec2:DescribeSnapshots"},
        "AbortFunction": {
            "ec2:DescribeSnapshots",
            "ec2:DescribeImages",
            "ec2:DeleteSnapshot",
            "s3:ListBucket",
            "s3:GetObject",
            "s3:DeleteObject",
        },
        "ProviderFunction": {
            "states:StartExecution",
            "states:ListExecutions",
            "states:DescribeExecution",
            "states:StopExecution",
            "ec2:DescribeSnapshots",
            "ec2:DescribeImages",
            "ec2:DeleteSnapshot",
            "ec2:CreateTags",
            "ec2:DeleteTags",
            "ec2:RegisterImage",
            "ec2:DeregisterImage",
            "ec2:ModifyImageAttribute",
        },
    }
    for function, actions in needed.items():
        granted = {a for s in statements_of(function) for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
        assert actions <= granted, (function, actions - granted)


def image_statements(action: str) -> list[dict[str, Any]]:
    return [
        s
        for s in statements_of("ProviderFunction")
        if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]


def test_image_changes_are_limited_to_images_the_provider_registered() -> None:
    for action in ("ec2:DeregisterImage", "ec2:ModifyImageAttribute", "ec2:DeleteTags"):
        for statement in image_statements(action):
            assert "aws:ResourceTag/ebs-snapshot-provider:managed-by" in statement["Condition"]["StringEquals"], action
    image_arn = {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}::image/*"}
    assert all(s["Resource"] == image_arn for s in image_statements("ec2:DeregisterImage"))


def test_images_are_registered_only_with_the_providers_tag() -> None:
    # RegisterImage is authorized on the new image and on each mapped snapshot; only the image
    # is the provider's own, and it must be tagged as such in the request.
    by_resource = {s["Resource"]["Fn::Sub"].rsplit(":", 1)[-1]: s for s in image_statements("ec2:RegisterImage")}
    assert set(by_resource) == {"image/*", "snapshot/*"}
    assert by_resource["image/*"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/ebs-snapshot-provider:managed-by": {"Ref": "AWS::StackName"}}
    }
    assert by_resource["snapshot/*"]["Action"] == "ec2:RegisterImage"
    tagging = [
        s for s in image_statements("ec2:CreateTags") if "ec2:CreateAction" in s.get("Condition", {}).get("StringEquals", {})
    ]
    assert [s["Condition"]["StringEquals"]["ec2:CreateAction"] for s in tagging] == ["RegisterImage"]
