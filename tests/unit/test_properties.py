"""Property parsing: CloudFormation sends strings; every error names the property."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.properties import parse_properties
from uploader.errors import InvalidProperty

BASE = {"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:p", "ImageBucket": "my-images", "ImageKey": "disk.raw"}


def parse(**overrides: object):
    return parse_properties({**BASE, **overrides})


def test_volume_size_string_is_parsed_as_gib() -> None:
    assert parse(VolumeSize="8").volume_size_gib == 8


def test_false_string_is_false_not_truthy() -> None:
    spec = parse(Encrypted="false")
    assert spec.encrypted is False


def test_true_string_is_true() -> None:
    assert parse(Encrypted="TRUE").encrypted is True


def test_optional_properties_default_to_none() -> None:
    spec = parse()
    assert (spec.volume_size_gib, spec.description, spec.encrypted, spec.kms_key_arn, spec.tags) == (None, None, None, None, {})


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"VolumeSize": "abc"}, "VolumeSize"),
        ({"VolumeSize": "8.5"}, "VolumeSize"),
        ({"VolumeSize": "-1"}, "VolumeSize"),
        ({"VolumeSize": "0"}, "VolumeSize"),
        ({"VolumeSize": "65537"}, "VolumeSize"),
        ({"Encrypted": "yes"}, "Encrypted"),
        ({"Encrypted": "false", "KmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/abcd-1234"}, "KmsKeyArn"),
        ({"KmsKeyArn": "alias/aws/ebs"}, "KmsKeyArn"),
        ({"Description": "x" * 256}, "Description"),
        ({"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}, "Tags"),
        ({"Tags": [{"Key": "aws:reserved", "Value": "v"}]}, "Tags[0].Key"),
        ({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}, "Tags[1].Key"),
        ({"Tags": "team=images"}, "Tags"),
        ({"ImageBucket": ""}, "ImageBucket"),
        ({"ImageBucket": "Not_A_Bucket"}, "ImageBucket"),
        ({"ImageKey": None}, "ImageKey"),
        ({"VolumeSzie": "8"}, "VolumeSzie"),
    ],
)
def test_bad_property_is_rejected_naming_it(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidProperty, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse(**overrides)


def test_missing_image_bucket_is_rejected() -> None:
    with pytest.raises(InvalidProperty, match="ImageBucket is required"):
        parse_properties({"ImageKey": "disk.raw"})


def test_largest_volume_is_accepted() -> None:
    assert parse(VolumeSize="65536").volume_size_gib == 65536


def test_kms_key_implies_encryption_in_content_key() -> None:
    arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert parse(KmsKeyArn=arn).content_key() != parse().content_key()


def test_tags_do_not_change_the_content_key() -> None:
    assert parse(Tags=[{"Key": "team", "Value": "a"}]).content_key() == parse(Tags=[{"Key": "team", "Value": "b"}]).content_key()


def test_image_description_and_size_change_the_content_key() -> None:
    base = parse().content_key()
    assert parse(ImageKey="other.raw").content_key() != base
    assert parse(Description="new").content_key() != base
    assert parse(VolumeSize="9").content_key() != base


realistic = st.sampled_from(["8", "false", "true", "TRUE", "my-images", "disk.raw", "-1", "8.5", "", "65537", "alias/x"])
tags = st.lists(st.fixed_dictionaries({"Key": st.text(max_size=130), "Value": st.text(max_size=260)}), max_size=52)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    realistic,
    st.text(max_size=300),
    tags,
    st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), max_size=3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["ImageBucket", "ImageKey", "VolumeSize", "Description", "Tags", "Encrypted", "KmsKeyArn", "Other"]),
        values,
    )
)
def test_parser_only_ever_raises_invalid_property(properties: dict[str, object]) -> None:
    """Fuzz: whatever CloudFormation sends, the answer is a spec or a clear InvalidProperty, never a crash."""
    try:
        spec = parse_properties(properties)
    except InvalidProperty as error:
        assert str(error)
    else:
        assert spec.image_bucket == properties["ImageBucket"]
        assert spec.volume_size_gib is None or 1 <= spec.volume_size_gib <= 65536


def test_service_timeout_shortens_the_deadline_with_a_margin() -> None:
    import time

    from handler.lifecycle import deadline
    from handler.properties import parse_service_timeout

    assert parse_service_timeout({"ServiceTimeout": "600"}) == 600
    assert parse_service_timeout({}) is None
    assert 530 < deadline(600) - time.time() <= 540
    assert deadline(30) - time.time() <= 0  # at least 60 s kept in reserve: answer FAILED at once
    assert deadline(None) - time.time() == pytest.approx(55 * 60, abs=2)
    with pytest.raises(InvalidProperty, match="ServiceTimeout"):
        parse_service_timeout({"ServiceTimeout": "0"})
