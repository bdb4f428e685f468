"""Readers' GET buffers outlive a range (a warm sandbox's next range reuses them), one reader each."""

from __future__ import annotations

from uploader import config, geometry, write


def test_a_buffer_given_back_is_the_next_one_taken_and_no_more_are_kept_than_readers() -> None:
    taken = [write.take_read_buffer() for _ in range(config.READER_THREADS + 2)]
    assert len({id(buffer) for buffer in taken}) == len(taken)  # in use at once: each its own
    assert all(len(buffer) == config.READ_CHUNK_BLOCKS * geometry.BLOCK_SIZE for buffer in taken)
    for buffer in taken:
        write.give_back_read_buffer(buffer)
    assert len(write._read_buffers) == config.READER_THREADS
    again = write.take_read_buffer()
    assert any(again is buffer for buffer in taken)
    write.give_back_read_buffer(again)
