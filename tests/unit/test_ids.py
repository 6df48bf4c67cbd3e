"""Ids of new records: random version-4 UUIDs, drawn from the OS in blocks."""

from __future__ import annotations

import os

from services.common.db import new_id


def test_new_ids_are_random_version_4_uuids_never_repeated_even_across_a_fork() -> None:
    ids = {new_id() for _ in range(5000)}
    assert len(ids) == 5000 and {one.version for one in ids} == {4}
    new_id()  # the parent now holds drawn ids that a forked child must not reuse
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, new_id().bytes)
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 16) != new_id().bytes
