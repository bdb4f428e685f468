"""Write: one worker uploads one range of the image, block by block.

Called by the Map's WriteRange state through ``app.write_range``. Two kinds of threads:

- readers take read chunks of the range (ranged S3 GETs of ``READ_CHUNK_BLOCKS`` blocks), split
  them into 512 KiB blocks (the last zero-padded), drop all-zero blocks when that is safe, and
  queue the rest;
- writers take blocks from the queue, hash them and put them with PutSnapshotBlock, paced.

Calls in flight are ``WRITER_THREADS`` whatever the range size, and memory stays bounded by the
queue and the readers' chunks, whatever the image size. Retries happen inside ``aws.call``; a
block that still fails stops the range. Digests go to the work bucket, not into state.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from uploader import aws, config, digests, geometry, pacing
from uploader.errors import DeadlineExceeded
from uploader.pacing import AdaptiveRate
from uploader.plan import Job

ZERO_BLOCK = bytes(geometry.BLOCK_SIZE)


@dataclass(frozen=True)
class RangeResult:
    index: int
    blocks_written: int
    blocks_skipped: int


@dataclass
class RangeRun:
    """State the readers and writers of one range share."""

    job: Job
    pacer: AdaptiveRate
    chunks: Iterator[tuple[int, int]]
    blocks: queue.Queue[tuple[int, bytes] | None] = field(default_factory=lambda: queue.Queue(config.QUEUED_BLOCKS))
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    written: list[tuple[int, bytes]] = field(default_factory=list)

    def next_chunk(self) -> tuple[int, int] | None:
        with self.lock:
            return next(self.chunks, None)

    def fail(self, error: BaseException) -> None:
        """Record the first cause; the other threads finish their current call and take no new work."""
        with self.lock:
            self.errors.append(error)
        self.stop.set()


def write_range(job: Job, index: int) -> RangeResult:
    """Upload range ``index`` of ``job`` and store its digest report; safe to run twice."""
    first_block, block_count = job.range_span(index)
    chunks = (
        (start, min(config.READ_CHUNK_BLOCKS, first_block + block_count - start))
        for start in range(first_block, first_block + block_count, config.READ_CHUNK_BLOCKS)
    )
    with (
        pacing.worker_pacer(job.snapshot_id, job.write_rate_per_worker) as pacer,
        ThreadPoolExecutor(config.READER_THREADS + config.WRITER_THREADS, thread_name_prefix=f"range{index}") as pool,
    ):
        run = RangeRun(job, pacer, chunks)
        writers = [pool.submit(write_blocks, run) for _ in range(config.WRITER_THREADS)]
        readers = [pool.submit(read_chunks, run) for _ in range(config.READER_THREADS)]
        for reader in readers:
            reader.result()  # readers never raise: they record errors in ``run``
        for _ in writers:
            run.blocks.put(None)  # writers drain the queue to the end, so these always arrive
        for writer in writers:
            writer.result()
    if run.errors:
        raise run.errors[0]
    written = sorted(run.written)
    report = digests.RangeReport(first_block, block_count, written)
    aws.put_object(job.work_bucket, job.report_key(index), digests.encode(report))
    return RangeResult(index=index, blocks_written=len(written), blocks_skipped=report.skipped)


def read_chunks(run: RangeRun) -> None:
    """Reader thread: GET chunks until none is left, queueing the blocks worth writing."""
    buffer = take_read_buffer()
    try:
        while not run.stop.is_set() and (chunk := run.next_chunk()) is not None:
            for block in read_chunk(run.job, *chunk, buffer):
                run.blocks.put(block)  # waits while the writers are behind: memory stays bounded
    except BaseException as error:  # noqa: BLE001 - handed to write_range, which raises it
        run.fail(error)
    finally:
        give_back_read_buffer(buffer)


# One 4 MiB buffer per reader, refilled by every GET and kept for the sandbox's next range:
# a new one costs 1,024 page faults before its first byte (measured), which a small range of a
# sparse image would pay for every ~32 MiB it reads. A buffer is used by one reader at a time.
_read_buffers: list[bytearray] = []
_read_buffers_lock = threading.Lock()


def take_read_buffer() -> bytearray:
    with _read_buffers_lock:
        if _read_buffers:
            return _read_buffers.pop()
    return bytearray(config.READ_CHUNK_BLOCKS * geometry.BLOCK_SIZE)


def give_back_read_buffer(buffer: bytearray) -> None:
    with _read_buffers_lock:
        if len(_read_buffers) < config.READER_THREADS:
            _read_buffers.append(buffer)


def read_chunk(job: Job, first_block: int, block_count: int, buffer: bytearray) -> Iterator[tuple[int, bytes]]:
    """(index, 512 KiB) of the blocks of one chunk that must be written, with one GET into
    ``buffer``. Each block is a copy, so ``buffer`` is free again once this is exhausted."""
    check_deadline(job, first_block, block_count)
    first_byte = first_block * geometry.BLOCK_SIZE
    last_byte = min(job.image_size, (first_block + block_count) * geometry.BLOCK_SIZE) - 1
    length = aws.read_object_range_into(
        job.image_bucket, job.image_key, first_byte, last_byte, job.image_etag, buffer, deadline=job.deadline
    )
    view = memoryview(buffer)[:length]
    for offset in range(0, length, geometry.BLOCK_SIZE):
        if job.skip_zero_blocks and is_zero(buffer, offset, length):
            continue  # an unwritten block of an unencrypted snapshot reads as zeros: no call needed
        yield (
            first_block + offset // geometry.BLOCK_SIZE,
            view[offset : offset + geometry.BLOCK_SIZE].tobytes().ljust(geometry.BLOCK_SIZE, b"\0"),
        )


def is_zero(data: bytes | bytearray, offset: int, length: int) -> bool:
    """Whether the block at ``offset`` of the first ``length`` bytes is all zeros, compared in
    place: ``startswith`` is a memcmp, where comparing memoryviews goes byte by byte."""
    end = min(offset + geometry.BLOCK_SIZE, length)
    return data.startswith(ZERO_BLOCK if end - offset == geometry.BLOCK_SIZE else ZERO_BLOCK[: end - offset], offset, end)


def write_blocks(run: RangeRun) -> None:
    """Writer thread: put queued blocks until the end marker. After a failure it keeps taking
    blocks off the queue without writing them, so no reader waits forever."""
    while (item := run.blocks.get()) is not None:
        if run.stop.is_set():
            continue
        block_index, block = item
        try:
            check_deadline(run.job, block_index, 1)
            digest = hashlib.sha256(block).digest()
            aws.put_snapshot_block(
                run.job.snapshot_id,
                block_index,
                block,
                digest,
                snapshot_visible_after=run.job.snapshot_started_at + config.SNAPSHOT_VISIBILITY_GRACE_SECONDS,
                deadline=run.job.deadline,
                pacer=run.pacer,
            )
        except BaseException as error:  # noqa: BLE001 - handed to write_range, which raises it
            run.fail(error)
            continue
        with run.lock:
            run.written.append((block_index, digest))


def check_deadline(job: Job, first_block: int, block_count: int) -> None:
    if time.time() > job.deadline:
        raise DeadlineExceeded(
            f"Snapshot {job.snapshot_id}: blocks {first_block}..{first_block + block_count - 1} not written by the deadline; "
            "the upload cannot finish within the resource's ServiceTimeout"
        )
