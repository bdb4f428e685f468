"""CDK tests run aws-cdk-lib through jsii, which needs Node.js: fail loudly without it, and
keep jsii's Node version banners out of the output (the tested versions are pinned)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

NODE = shutil.which("node")
if NODE is None:
    raise pytest.UsageError("The CDK tests need Node.js (`node` on PATH): jsii runs aws-cdk-lib in it")
NODE_MAJOR = (
    subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True).stdout.strip().lstrip("v").split(".")[0]
)
for kind in ("END_OF_LIFE", "DEPRECATED", "UNTESTED"):
    os.environ.setdefault(f"JSII_SILENCE_WARNING_{kind}_NODE_VERSION", NODE_MAJOR)
