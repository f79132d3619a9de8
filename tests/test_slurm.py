"""``srun omniembed train``: every SLURM task runs in place and joins one process group from SLURM's variables.

Tested on CPU: two processes started by hand with the variables srun would set (gloo on 127.0.0.1), against one
process holding the whole batch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from omniembed.errors import ConfigError
from omniembed.pretrain import trainer
from omniembed.pretrain.config import load_config
from omniembed.pretrain.distributed import env_from_slurm, first_host

sys.path.insert(0, str(Path(__file__).parent))
from test_trainer import parse_train_command, records, shapes, tiny_experiment, write_experiment  # noqa: E402,F401


@pytest.mark.parametrize("nodelist, host", [
    ("node017", "node017"), ("gpu-node[017-020,031],login1", "gpu-node017"), ("a1,b[2-3]", "a1"),
    ("rack[2-3]-n[05,07]", "rack2-n05"), ("cn[9]", "cn9"), ("", "")])
def test_first_host_of_a_slurm_nodelist(nodelist, host):
    assert first_host(nodelist) == host


def test_master_address_comes_from_the_nodelist_and_the_port_from_the_job_id():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "16", "SLURM_LOCALID": "3", "SLURM_JOB_NODELIST": "gpu[04-07]",
           "SLURM_JOB_ID": "123456"}
    assert env_from_slurm(env) == {"RANK": "3", "WORLD_SIZE": "16", "LOCAL_RANK": "3", "MASTER_ADDR": "gpu04",
                                   "MASTER_PORT": str(29500 + 456)}
    exported = env_from_slurm({**env, "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "4000"})
    assert (exported["MASTER_ADDR"], exported["MASTER_PORT"]) == ("10.1.2.3", "4000")


SRUN_TASK = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_LOCALID": "0", "SLURM_JOB_NODELIST": "localhost"}


def test_srun_task_that_sees_several_gpus_trains_in_place(monkeypatch):
    command, args = parse_train_command(["cfg.yaml"])
    monkeypatch.setattr(command, "default_nproc", lambda: 8)  # the node's GPUs, all visible to the task
    monkeypatch.setattr("omniembed.pretrain.config.load_config", lambda *a: None)
    calls = []
    monkeypatch.setattr(trainer, "main", lambda tail: calls.append(tail) or 0)
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("started torchrun inside an srun task"))
    for key, value in SRUN_TASK.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RANK", raising=False)
    assert command.run(args) == 0
    assert calls == [["cfg.yaml"]]
    with pytest.raises(ConfigError, match="one task per GPU"):
        command.run(parse_train_command(["cfg.yaml", "--nproc", "4"])[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two training processes
def test_two_srun_tasks_train_as_one_job_equal_to_one_process(shapes, tmp_path):  # noqa: F811
    config = write_experiment(tmp_path / "exp.yaml", tiny_experiment(shapes, tmp_path / "srun", steps=6))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env.update(SLURM_NTASKS="2", SLURM_JOB_NODELIST="localhost", MASTER_PORT=str(free_port()), SLURM_JOB_ID="7")
    tasks = [subprocess.Popen([sys.executable, "-m", "omniembed.cli", "train", str(config)],
                              env={**env, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    outputs = [t.communicate(timeout=240)[0] for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "on 2 process(es)" in outputs[0]
    trainer.train(load_config(config, [f"train.out_dir={tmp_path / 'single'}"]))
    two = [r["loss"] for r in records(tmp_path / "srun")]
    one = [r["loss"] for r in records(tmp_path / "single")]
    assert len(two) == len(one) == 6
    assert max(abs(a - b) for a, b in zip(one, two)) < 2e-5
