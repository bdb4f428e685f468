"""The provider's whole AWS world on 127.0.0.1, deployed from the project's own template.yaml.

``LocalEmulation`` starts moto in server mode (S3, EBS, EC2, IAM, Lambda, Step Functions) in
this process, turns on Step Functions execution, makes EBS strict (``strict_ebs``), routes
Lambda invokes to the real handlers (``lambda_runtime``), deploys the template's functions,
bucket and state machine, and stands in for CloudFormation's ResponseURL (``cfn_endpoint``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import mmap
import os
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config
from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.s3.models import FakeKey, s3_backends

from ebs_snapshot_local import strict_ebs, strict_ec2, template
from ebs_snapshot_local.cfn_endpoint import ResponseEndpoint
from ebs_snapshot_local.fast_lane import FastLane
from ebs_snapshot_local.http_server import KeepAliveMotoServer
from ebs_snapshot_local.lambda_runtime import FunctionSpec, LocalLambdaRuntime

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"
SECRET_ACCESS_KEY = "testing"  # noqa: S105 - the emulation's own; it verifies block signatures with it
DEFAULT_REGION = "eu-west-1"
CDK_QUALIFIER = "hnb659fds"
DIRECT_STAGING_BYTES = 256 << 20


@dataclass
class Deployment:
    """What ``deploy`` created from template.yaml."""

    stack_name: str
    service_token: str
    state_machine_arn: str
    work_bucket: str
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # by logical id


class LocalEmulation:
    """Use as a context manager; one per process is enough (tests share one per session)."""

    def __init__(
        self,
        *,
        region: str = DEFAULT_REGION,
        stack_name: str = "ebs-snapshot-provider",
        parameters: dict[str, str] | None = None,
        settings: strict_ebs.EmulationSettings | None = None,
    ) -> None:
        self.region = region
        self.stack_name = stack_name
        self.parameters = parameters or {}
        self.strict = strict_ebs.StrictEbs(settings)
        self.image_links = strict_ec2.ImageLinks()
        self.runtime = LocalLambdaRuntime()
        self.endpoint = ResponseEndpoint()
        self.server = KeepAliveMotoServer(
            ip_address="127.0.0.1", port=0, front=lambda moto_app: FastLane(moto_app, self.strict, ACCOUNT_ID, SECRET_ACCESS_KEY)
        )
        self.endpoint_url = ""
        self.deployment: Deployment | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> LocalEmulation:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # The interpreter logs every failed state at ERROR; executions' histories say the same.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        serve_object_ranges_without_copying_whole_objects()
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        os.environ.update(
            {
                # The Step Functions interpreter's own clients call localhost:MOTO_PORT.
                "MOTO_PORT": str(port),
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "AWS_SESSION_TOKEN": "testing",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                # No stock AMIs and their snapshots: the account holds only what tests make.
                "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
            }
        )
        requests.post(
            f"{self.endpoint_url}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
            timeout=10,
        ).raise_for_status()
        strict_ebs.install(self.strict)
        strict_ec2.install(self.image_links)
        self.runtime.install()
        # Without Docker moto's Lambda only echoes; send invokes to the function, whose
        # _invoke_lambda the runtime replaced.
        LambdaSimpleBackend.invoke = LambdaBackend.invoke  # type: ignore[method-assign]
        self.endpoint.start()
        self._forget_cached_clients()
        self.deployment = self.deploy()

    def stop(self) -> None:
        self.runtime.close_sandboxes()
        self.endpoint.stop()
        self.server.stop()

    @staticmethod
    def _forget_cached_clients() -> None:
        # The uploader caches one client per service; a new emulation has a new port.
        from uploader import aws

        aws.forget_clients()

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
        )

    # --- deploy template.yaml ---------------------------------------------------------------

    def deploy(self) -> Deployment:
        cfn = template.load(TEMPLATE_PATH)
        resources: dict[str, Any] = cfn["Resources"]
        globals_ = cfn.get("Globals", {}).get("Function", {})
        parameters = {
            name: self.parameters.get(name, spec.get("Default", "")) for name, spec in cfn.get("Parameters", {}).items()
        }
        refs: dict[str, Any] = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            **{
                name: [v for v in str(value).split(",") if v]
                if cfn["Parameters"][name]["Type"] == "CommaDelimitedList"
                else value
                for name, value in parameters.items()
            },
        }
        attributes: dict[str, Any] = {}
        functions = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
        for logical_id in functions:
            name = f"{self.stack_name}-{logical_id}"
            refs[logical_id] = name
            attributes[f"{logical_id}.Arn"] = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
        work_bucket = f"{self.stack_name}-workbucket-{uuid.uuid4().hex[:12]}"
        refs["WorkBucket"] = work_bucket
        attributes["WorkBucket.Arn"] = f"arn:aws:s3:::{work_bucket}"
        machine_id, machine = next((lid, r) for lid, r in resources.items() if r["Type"] == "AWS::Serverless::StateMachine")
        resolver = template.Resolver(refs, attributes, cfn.get("Conditions", {}))
        machine_name = resolver.resolve(machine["Properties"]["Name"])
        machine_arn = f"arn:aws:states:{self.region}:{ACCOUNT_ID}:stateMachine:{machine_name}"
        refs[machine_id] = machine_arn

        self.client("s3").create_bucket(Bucket=work_bucket, CreateBucketConfiguration={"LocationConstraint": self.region})
        role_arn = self.client("iam").create_role(
            RoleName=f"{self.stack_name}-role-{uuid.uuid4().hex[:8]}",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]

        deployment = Deployment(self.stack_name, attributes["ProviderFunction.Arn"], machine_arn, work_bucket)
        environment: dict[str, str] = {}
        for logical_id, resource in functions.items():
            properties = {**globals_, **resource["Properties"]}
            variables = {
                **resolver.resolve(globals_.get("Environment", {}).get("Variables", {})),
                **resolver.resolve(resource["Properties"].get("Environment", {}).get("Variables", {})),
            }
            variables = {k: str(v) for k, v in variables.items()}
            spec = FunctionSpec(
                name=refs[logical_id],
                handler=properties["Handler"],
                timeout_seconds=int(properties.get("Timeout", 3)),
                memory_mb=int(properties.get("MemorySize", 128)),
                arn=attributes[f"{logical_id}.Arn"],
            )
            self.client("lambda").create_function(
                FunctionName=spec.name,
                Runtime=properties["Runtime"],
                Role=role_arn,
                Handler=spec.handler,
                Code={"ZipFile": placeholder_zip()},
                Timeout=spec.timeout_seconds,
                MemorySize=spec.memory_mb,
                Architectures=properties.get("Architectures", ["arm64"]),
                Environment={"Variables": variables},
            )
            self.runtime.register(spec)
            deployment.functions[logical_id] = spec
            for key, value in variables.items():
                if environment.get(key, value) != value:
                    raise RuntimeError(f"Functions disagree on {key}; in-process handlers share one environment")
                environment[key] = value
        # Handlers run in this process, so they share one environment: the union of theirs.
        os.environ.update(environment)

        definition = (PROJECT_ROOT / machine["Properties"]["DefinitionUri"]).read_text()
        for key, value in resolver.resolve(machine["Properties"].get("DefinitionSubstitutions", {})).items():
            definition = definition.replace("${" + key + "}", str(value))
        self.client("stepfunctions").create_state_machine(
            name=machine_name, definition=definition, roleArn=role_arn, type=machine["Properties"].get("Type", "STANDARD")
        )
        return deployment

    # --- what a user of the provider does ---------------------------------------------------

    @property
    def cdk_asset_bucket(self) -> str:
        return f"cdk-{CDK_QUALIFIER}-assets-{ACCOUNT_ID}-{self.region}"

    def stage_image(self, path: Path) -> tuple[str, str]:
        """Upload an image the way CDK stages a file asset: bootstrap bucket, key ``<sha256>.raw``."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(8 << 20), b""):
                digest.update(chunk)
        bucket, key = self.cdk_asset_bucket, f"{digest.hexdigest()}.raw"
        s3 = self.client("s3")
        try:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.region})
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        size = path.stat().st_size
        if size <= DIRECT_STAGING_BYTES:
            s3.upload_file(str(path), bucket, key)
            return bucket, key
        # moto copies a large object on every write and read (~20 s/GiB to stage). A large image
        # is put as a small stand-in whose content is then served from the file itself, mapped.
        with path.open("rb") as handle:
            content = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        stand_in = s3_backends[ACCOUNT_ID]["aws"].put_object(bucket, key, b"")
        stand_in.__dict__["_emulation_value"] = content
        stand_in.contentsize = size
        stand_in._etag = hashlib.md5(f"{path}:{size}:{path.stat().st_mtime_ns}".encode(), usedforsecurity=False).hexdigest()
        return bucket, key

    def send(self, event: dict[str, Any], *, timeout_seconds: float = 600) -> dict[str, Any]:
        """Deliver a CloudFormation event to the ServiceToken, as CloudFormation does (an
        asynchronous invoke), and wait for the answer PUT to the ResponseURL."""
        return self.endpoint.wait_for(self.deliver(event), timeout_seconds)

    def deliver(self, event: dict[str, Any]) -> str:
        """Deliver an event without waiting for its answer; returns its RequestId."""
        request_id = str(event.setdefault("RequestId", str(uuid.uuid4())))
        event["ResponseURL"] = self.endpoint.url_for(request_id)
        assert self.deployment is not None
        event["ServiceToken"] = self.deployment.service_token
        event.setdefault("ResourceProperties", {})["ServiceToken"] = self.deployment.service_token
        self.client("lambda").invoke(
            FunctionName=self.deployment.service_token, InvocationType="Event", Payload=json.dumps(event).encode()
        )
        return request_id

    def snapshots(self) -> list[dict[str, Any]]:
        """Every snapshot the provider made (they carry its managed-by tag), in any state."""
        from uploader import tags

        return list(
            self.client("ec2").describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": [tags.MANAGED_BY]}])[
                "Snapshots"
            ]
        )

    def executions(self) -> list[dict[str, Any]]:
        assert self.deployment is not None
        return list(self.client("stepfunctions").list_executions(stateMachineArn=self.deployment.state_machine_arn)["executions"])

    def wait_for_executions(self, timeout_seconds: float = 60) -> None:
        """Block until no execution of the upload state machine is running."""
        deadline = time.monotonic() + timeout_seconds
        while any(e["status"] == "RUNNING" for e in self.executions()):
            if time.monotonic() > deadline:
                raise TimeoutError("Upload executions still running")
            time.sleep(0.2)


def serve_object_ranges_without_copying_whole_objects() -> None:
    """moto reads a whole object for every ranged GET (400 MiB copied to serve 4 MiB), which
    makes the emulation, not the uploader, the bottleneck. Keep one copy per object version."""
    if getattr(FakeKey, "_emulation_caches_value", False):
        return
    plain: Any = FakeKey.__dict__["value"]

    def cached_value(key: FakeKey) -> bytes:
        value = key.__dict__.get("_emulation_value")
        if value is None:
            value = plain.fget(key)
            key.__dict__["_emulation_value"] = value
        return value  # type: ignore[no-any-return]

    def set_value(key: FakeKey, new_value: bytes) -> None:
        key.__dict__.pop("_emulation_value", None)
        plain.fset(key, new_value)

    FakeKey.value = property(cached_value, set_value)  # type: ignore[assignment,method-assign]
    FakeKey._emulation_caches_value = True  # type: ignore[attr-defined]


def placeholder_zip() -> bytes:
    """moto wants a code package; the code that runs is the project's, in-process."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "Handlers run in-process from src/; see ebs_snapshot_local.lambda_runtime.\n")
    return buffer.getvalue()
