"""examples/nixos-ami synthesizes with plain ``python app.py``, and the README's CDK section is
that app's code (so the two cannot drift)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ebs_assets

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "nixos-ami" / "app.py"
README = ROOT / "README.md"


def synthesize(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EBS_ASSETS_IMAGE", "CDK_CONTEXT_JSON")}
    env = {k: v for k, v in env.items() if k != "CDK_OUTDIR"}
    env.update(environment)
    # As the README runs it: plain python, no CDK CLI, the assembly lands in ./cdk.out.
    return subprocess.run(
        [sys.executable, str(APP)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # GIVEN a small stand-in for a NixOS raw image
    tmp_path = tmp_path_factory.mktemp("example")
    image = tmp_path / "nixos.raw"
    image.write_bytes(os.urandom(4096) + bytes(1 << 20))
    # WHEN the example app runs as a user would run it
    result = synthesize(tmp_path, EBS_ASSETS_IMAGE=str(image))
    assert result.returncode == 0, result.stderr
    return tmp_path / "cdk.out"


def template(assembly: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((assembly / "NixosAmi.template.json").read_text())
    return loaded


def test_example_stages_the_image_as_a_file_asset_in_the_bootstrap_bucket(assembly: Path) -> None:
    manifest = json.loads((assembly / "NixosAmi.assets.json").read_text())
    images = {h: f for h, f in manifest["files"].items() if f["source"]["path"].endswith(".raw")}
    assert len(images) == 1
    asset_hash, asset = next(iter(images.items()))
    assert asset["source"] == {"path": f"asset.{asset_hash}.raw", "packaging": "file"}
    assert (assembly / f"asset.{asset_hash}.raw").stat().st_size == 4096 + (1 << 20)
    (destination,) = asset["destinations"].values()
    assert destination["bucketName"] == "cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}"
    assert destination["objectKey"] == f"{asset_hash}.raw"
    # and the snapshot resource reads exactly that object, tagged with the asset hash
    snapshot = resources_of(assembly, "Custom::EbsSnapshot")
    (properties,) = [r["Properties"] for r in snapshot.values()]
    assert properties["ImageBucket"] == {"Fn::Sub": destination["bucketName"]}
    assert properties["ImageKey"] == destination["objectKey"]
    assert {"Key": "ebs-assets:asset-hash", "Value": asset_hash} in properties["Tags"]


def resources_of(assembly: Path, resource_type: str) -> dict[str, Any]:
    return {k: v for k, v in template(assembly)["Resources"].items() if v["Type"] == resource_type}


def test_example_makes_an_arm64_uefi_ena_imdsv2_image_from_the_snapshot(assembly: Path) -> None:
    snapshots = resources_of(assembly, "Custom::EbsSnapshot")
    images = resources_of(assembly, "Custom::EbsImage")
    assert len(snapshots) == 1 and len(images) == 1
    (snapshot_id,) = snapshots
    (image,) = images.values()
    properties = image["Properties"]
    # the image references the snapshot's output, which is what orders create and delete
    assert properties["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {"SnapshotId": {"Fn::GetAtt": [snapshot_id, "SnapshotId"]}, "VolumeType": "gp3", "DeleteOnTermination": True},
        }
    ]
    assert {k: properties[k] for k in ("Architecture", "BootMode", "EnaSupport", "ImdsSupport", "VirtualizationType")} == {
        "Architecture": "arm64",
        "BootMode": "uefi",
        "EnaSupport": True,
        "ImdsSupport": "v2.0",
        "VirtualizationType": "hvm",
    }
    assert re.fullmatch(r"nixos-arm64-[0-9a-f]{16}", properties["Name"])
    # both served by the provider stack's exported ServiceToken
    for resource in (*snapshots.values(), image):
        assert resource["Properties"]["ServiceToken"] == {"Fn::ImportValue": "ebs-snapshot-provider-ServiceToken"}
    outputs = template(assembly)["Outputs"]
    assert outputs["SnapshotId"]["Value"] == {"Fn::GetAtt": [snapshot_id, "SnapshotId"]}
    assert outputs["ImageId"]["Value"] == {"Ref": next(iter(images))}


def test_example_asks_for_no_parameters_at_deploy_time(assembly: Path) -> None:
    # The image is an asset of the assembly, not a stack parameter: the only parameter is the
    # bootstrap version CDK's default synthesizer checks.
    parameters = template(assembly)["Parameters"]
    assert set(parameters) == {"BootstrapVersion"}
    assert parameters["BootstrapVersion"]["Default"] == "/cdk-bootstrap/hnb659fds/version"


def test_example_without_an_image_path_says_how_to_give_one(tmp_path: Path) -> None:
    result = synthesize(tmp_path)
    assert result.returncode != 0
    assert "EBS_ASSETS_IMAGE" in result.stderr and "-c image=" in result.stderr
    missing = synthesize(tmp_path, EBS_ASSETS_IMAGE=str(tmp_path / "nope.raw"))
    assert missing.returncode != 0 and "nope.raw does not exist" in missing.stderr


def code_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def readme_cdk_example() -> str:
    section = README.read_text().split("## Use from CDK", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's Use from CDK section has no python block"
    return match.group(1)


def contains_run(haystack: list[str], needle: list[str]) -> bool:
    return any(haystack[i : i + len(needle)] == needle for i in range(len(haystack) - len(needle) + 1))


def test_readme_cdk_example_is_the_example_apps_code() -> None:
    assert contains_run(code_lines(APP.read_text()), code_lines(readme_cdk_example()))


def test_construct_docstring_examples_are_lines_of_the_readme_example() -> None:
    example = iter(line.strip() for line in code_lines(readme_cdk_example()))
    for construct in (ebs_assets.SnapshotAsset, ebs_assets.Image):
        block = (construct.__doc__ or "").split("Example::", 1)[1].split("Parameters", 1)[0]
        wanted = [line.strip() for line in block.splitlines() if line.strip()]
        # every line of the docstring's example, in order, in the README's (which adds comments)
        assert all(line in example for line in wanted), construct.__name__
