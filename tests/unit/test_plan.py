"""Planning: volume size, ranges and the size of what goes into Step Functions state."""

from __future__ import annotations

import json

import pytest

from uploader import config, geometry, plan
from uploader.errors import VolumeTooSmall
from uploader.spec import SnapshotSpec

GIB = geometry.GIB
STATE_LIMIT_BYTES = 262_144
SPEC = SnapshotSpec(image_bucket="b", image_key="k")


def job_for(image_size: int, max_workers: int = config.DEFAULT_MAX_WORKERS) -> plan.Job:
    block_count = geometry.blocks_spanned(image_size)
    range_blocks, range_count = plan.plan_ranges(block_count, max_workers)
    return plan.Job(
        snapshot_id="snap-0123456789abcdef0",
        cfn_request_id="7f3e2a9c-1d4b-4e6f-8a2b-3c4d5e6f7a8b",
        execution_name="upload-0123456789abcdef0123456789abcdef01234567",
        image_bucket="cdk-hnb659fds-assets-123456789012-eu-west-1",
        image_key="4f1c8a0e2b7d9c3f5a6e1d8b0c2f4a7e9b1d3c5f7a9e2b4d6f8a0c1e3b5d7f9e.raw",
        image_etag='"0123456789abcdef0123456789abcdef-1024"',
        image_size=image_size,
        block_count=block_count,
        volume_size_gib=plan.choose_volume_size(SPEC, image_size),
        encrypted=False,
        skip_zero_blocks=True,
        snapshot_started_at=1_796_316_245.0,
        deadline=1_796_319_545.0,
        range_blocks=range_blocks,
        range_count=range_count,
        write_rate_per_worker=250.0,
        work_bucket="ebs-snapshot-provider-workbucket-0123456789ab",
        work_prefix="executions/upload-0123456789abcdef0123456789abcdef01234567/",
    )


@pytest.mark.parametrize(
    ("image_size", "volume_gib"),
    [(1, 1), (GIB, 1), (GIB + 1, 2), (8 * GIB - 5, 8), (64 * 1024 * GIB, 65536)],
)
def test_default_volume_is_smallest_that_holds_the_image(image_size: int, volume_gib: int) -> None:
    assert plan.choose_volume_size(SPEC, image_size) == volume_gib


def test_volume_size_too_small_is_rejected_with_both_sizes() -> None:
    with pytest.raises(VolumeTooSmall, match=r"VolumeSize 1 GiB .* needs at least 2 GiB"):
        plan.choose_volume_size(SnapshotSpec("b", "k", volume_size_gib=1), GIB + 1)


def test_image_larger_than_64_tib_is_rejected() -> None:
    with pytest.raises(VolumeTooSmall, match="65536 GiB"):
        plan.choose_volume_size(SPEC, 64 * 1024 * GIB + 1)


def test_image_not_a_multiple_of_block_size_spans_a_partial_last_block() -> None:
    assert geometry.blocks_spanned(geometry.BLOCK_SIZE * 3 + 1) == 4


@pytest.mark.parametrize("image_size", [1, 5 * 2**20 + 7, GIB + 1, 20 * GIB, 512 * GIB + 3, 64 * 1024 * GIB])
def test_ranges_cover_every_block_exactly_once(image_size: int) -> None:
    job = job_for(image_size)
    covered = 0
    for index in range(job.range_count):
        first, count = job.range_span(index)
        assert first == covered and 0 < count <= job.range_blocks
        covered += count
    assert covered == job.block_count


@pytest.mark.parametrize("image_size", [20 * GIB, 64 * 1024 * GIB])
def test_plan_state_stays_far_below_256_kib(image_size: int) -> None:
    """The plan travels in state (Plan's output, every Map item's input); the range list does not."""
    job = job_for(image_size)
    plan_output = {"job": job.to_dict(), "manifest_key": job.manifest_key, "max_workers": 8}
    item_input = {"job": job.to_dict(), "range": {"index": job.range_count - 1}}
    assert len(json.dumps(plan_output)) < STATE_LIMIT_BYTES // 100
    assert len(json.dumps(item_input)) < STATE_LIMIT_BYTES // 100


def test_64_tib_plan_bounds_each_worker_share() -> None:
    job = job_for(64 * 1024 * GIB)
    assert job.range_blocks == config.MAX_RANGE_BLOCKS
    # Even at 10 blocks/s (a hundredth of the per-snapshot limit) a range takes < 15 minutes.
    assert job.range_blocks / 10 < 15 * 60


def test_small_image_is_split_for_parallel_workers() -> None:
    job = job_for(400 * 2**20)
    assert job.range_count >= 8
    assert job.range_blocks >= config.MIN_RANGE_BLOCKS


def test_manifest_items_are_range_indexes() -> None:
    assert plan.manifest(3) == [{"index": 0}, {"index": 1}, {"index": 2}]


def test_wait_loop_cannot_approach_the_history_limit() -> None:
    """Each turn of CheckSnapshot -> IsCompleted -> WaitForSnapshot adds ~9 history events; the
    poll schedule and the one-hour ceiling bound the turns."""
    from uploader import config

    seconds, turns = 0.0, 0
    while seconds < 3600:
        wait = next(s for after, s in config.POLL_SCHEDULE if seconds >= after)
        seconds += wait
        turns += 1
    assert turns * 9 + 100 < 25_000 // 4, turns
