"""Freed memory kept in the training process (pretrain.heap): the large blocks a training step frees are reused by
the next step instead of being mapped afresh page by page."""

import subprocess
import sys

import pytest

from omniembed.pretrain import heap

FAULTS_PER_STEP = """
import resource, sys, torch
from omniembed.pretrain import heap

torch.manual_seed(0)
# activations of [65536, 128] are 32 MiB: glibc maps blocks of that size afresh on every allocation by default
net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
x = torch.randn(1 << 16, 64)
with heap.freed_memory_kept(sys.argv[1] == "kept") as kept:
    assert kept == (sys.argv[1] == "kept")
    for _ in range(2):  # the heap grows to the step's working set
        net(x).square().mean().backward()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(6):
        net(x).square().mean().backward()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 6)
"""


def faults_per_step(mode: str) -> float:
    """Minor page faults per forward and backward of an MLP on 65536 rows, in a fresh process (the heap's history
    would carry over from one measurement to the next in this one)."""
    done = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True, check=True)
    return float(done.stdout)


@pytest.mark.skipif(heap.glibc() is None, reason="the allocator setting is glibc's")
def test_a_training_step_reuses_the_memory_the_last_one_freed():
    assert faults_per_step("kept") < faults_per_step("default") / 2


def test_disabled_it_reports_the_setting_off():
    with heap.freed_memory_kept(False) as kept:
        assert not kept
