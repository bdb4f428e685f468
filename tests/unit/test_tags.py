"""Source identity tags, for later deduplication."""

from __future__ import annotations

from uploader import tags

ASSET_HASH = "4f1c8a0e2b7d9c3f5a6e1d8b0c2f4a7e9b1d3c5f7a9e2b4d6f8a0c1e3b5d7f9e"


def test_cdk_asset_key_is_identified_by_its_hash() -> None:
    assert tags.source_identity("cdk-hnb659fds-assets-1-r", f"{ASSET_HASH}.raw", '"etag"') == f"cdk-asset:{ASSET_HASH}"


def test_other_key_is_identified_by_bucket_key_and_etag() -> None:
    assert tags.source_identity("images", "nixos/disk.raw", '"abc-3"') == "s3://images/nixos/disk.raw#abc-3"


def test_long_identity_is_hashed_to_fit_a_tag_value() -> None:
    identity = tags.source_identity("images", "k" * 1000, '"abc"')
    assert identity.startswith("sha256:") and len(identity) <= tags.MAX_VALUE_LENGTH
