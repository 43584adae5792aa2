"""Branches and tags come from a pooled cryptographic source: unique, and never shared with
a forked worker."""

from __future__ import annotations

import os

from sipstack.transaction import MAGIC_COOKIE, new_branch, new_tag, random_hex


def test_branches_and_tags_are_unique_across_pool_refills() -> None:
    branches = {new_branch() for _ in range(2000)}  # 20 kB: several 4 KiB refills
    assert len(branches) == 2000
    assert all(b.startswith(MAGIC_COOKIE) and len(b) == len(MAGIC_COOKIE) + 20 for b in branches)
    tags = {new_tag() for _ in range(2000)}
    assert len(tags) == 2000 and all(len(t) == 12 for t in tags)
    assert len(random_hex(5000)) == 10000  # more than one pool's worth at once


def test_a_forked_child_does_not_repeat_its_parents_values() -> None:
    random_hex(1)  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next branch, to the parent
        os.close(read)
        os.write(write, new_branch().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child.startswith(MAGIC_COOKIE)
    # Without a fresh pool after fork() the two would draw the same next bytes.
    assert child != new_branch()
