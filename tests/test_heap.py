"""glibc's heap for CPU inference: a freed activation is reused without page faults while a
request runs, and handed back to the system when it ends."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch

from glide_ui import heap

MB = 2**20
BLOCK = 96 * MB  # above glibc's largest mmap threshold (32 MiB), like a 256 px activation

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="glibc only: elsewhere a no-op")


def _faults_per_block(rounds: int = 12) -> list[int]:
    """Minor page faults of each of `rounds` BLOCK-sized tensors made and freed in turn (as
    the steps of a request make and free their activations)."""
    faults = []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(BLOCK // 4)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return faults


def in_a_fresh_process(check: str) -> None:
    """Run `check` of this module in a new interpreter: the heap is the process's, and what
    earlier tests left free on it would be reused whatever the settings."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
           f"import test_heap; test_heap.{check}()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_kept_heap_reuses_large_blocks_without_page_faults() -> None:
    in_a_fresh_process("kept_heap_reuses_large_blocks")


def test_release_heap_hands_freed_memory_back() -> None:
    in_a_fresh_process("release_heap_hands_memory_back")


def kept_heap_reuses_large_blocks() -> None:
    """glibc maps every large block afresh by default; from a kept heap freed blocks come
    back (not every round: an aligned block fits a freed one once the heap has grown)."""
    pages = BLOCK // resource.getpagesize()
    try:
        assert heap.keep_heap(False)
        assert min(_faults_per_block(4)) > pages // 2
        assert heap.keep_heap(True)
        assert min(_faults_per_block()) < pages // 20
    finally:
        heap.keep_heap(True)


def release_heap_hands_memory_back() -> None:
    heap.keep_heap(True)
    process = psutil.Process()
    block = torch.ones(4 * BLOCK // 4)
    held = process.memory_info().rss
    del block
    assert process.memory_info().rss > held - BLOCK  # kept for the next step
    heap.release_heap()
    assert process.memory_info().rss < held - 3 * BLOCK
