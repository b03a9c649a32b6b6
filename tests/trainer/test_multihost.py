"""Two trainer processes on 127.0.0.1 (CPU devices, gloo collectives) against one process.

The processes train the tiny audio-only model, each reading its own rows of
every global batch; both are killed after a checkpoint and the same command
resumes them. The losses and final parameters must equal those of a single
process with the same global batch and the same number of devices, up to the
order in which the gradient all-reduce adds the devices' parts.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np
import pytest

from shared import layout
from trainer import evaluate
from trainer.data import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOTAL_STEPS, CHECKPOINT_EVERY, KILL_AFTER = 12, 4, 6
DEVICES = 4  # in all: 2 per process, or 4 in the single process
BATCH_SIZE = 8  # global: the tiny config's
# float32 sums of the same gradients in another order (gloo across processes,
# XLA within one): a few ulps per step. Measured over 12 steps: losses differ
# by at most 2.4e-7 (2 ulps of log 4), and every parameter is within the bound.
RTOL, ATOL = 1e-5, 1e-6
pytestmark = pytest.mark.slow


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _command(workdir: str, build: str, *distributed: str) -> list[str]:
  return [sys.executable, "-m", "trainer.train", f"--config={REPO}/trainer/configs/tiny.py:audio",
          f"--workdir={workdir}", f"--config.data.train_dir={build}", "--config.model.num_layers=1",
          "--config.model.fusion_layer=1",
          f"--config.total_steps={TOTAL_STEPS}", f"--config.checkpoint_every_steps={CHECKPOINT_EVERY}",
          "--config.log_every_steps=1", *distributed]


def _environment(cache: str, devices_per_process: int) -> dict:
  # Without XLA's backend optimisations the tiny model compiles several times
  # faster; every run uses the same flags, so they compute the same program.
  return {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
          "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process} "
                       "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
          "JAX_COMPILATION_CACHE_DIR": cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def _start_pair(workdir: str, build: str, env: dict) -> list[subprocess.Popen]:
  address = f"127.0.0.1:{_free_port()}"
  return [subprocess.Popen(_command(workdir, build, f"--coordinator_address={address}", "--num_processes=2",
                                    f"--process_id={index}"),
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for index in range(2)]


def _finish(processes: list[subprocess.Popen]) -> None:
  for process in processes:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]


def _logged_losses(workdir: str) -> dict[int, float]:
  """step -> train/loss from the TensorBoard events (replayed steps must log the same value)."""
  import tensorflow as tf

  losses: dict[int, float] = {}
  for path in sorted(tf.io.gfile.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "train/loss":
          loss = float(tf.make_ndarray(value.tensor))
          assert losses.setdefault(event.step, loss) == loss, (event.step, losses[event.step], loss)
  return losses


def test_two_processes_resume_after_a_kill_and_match_one_process(tmp_path):
  build, cache = str(tmp_path / "build"), str(tmp_path / "jax_cache")
  synthetic.write_synthetic_build(build, num_clips=24, seconds=1.0, formats=(layout.ARRAYRECORD,))
  two, one = str(tmp_path / "two_processes"), str(tmp_path / "one_process")
  env = _environment(cache, DEVICES // 2)

  # Two processes, both killed once a checkpoint is committed and training went on.
  processes = _start_pair(two, build, env)
  committed = os.path.join(two, "checkpoints", str(CHECKPOINT_EVERY), "commit_success.txt")
  try:
    for line in processes[0].stdout:
      if line.startswith(f"step {KILL_AFTER}/"):
        while not os.path.exists(committed):
          time.sleep(0.01)
        break
  finally:
    for process in processes:
      process.send_signal(signal.SIGKILL)
      process.communicate()
  saved = sorted(int(step) for step in os.listdir(os.path.join(two, "checkpoints")) if step.isdigit())
  assert saved and saved[0] == CHECKPOINT_EVERY and saved[-1] < TOTAL_STEPS, saved

  # The same command resumes both; then one process with all the devices.
  _finish(_start_pair(two, build, env))
  reference = subprocess.run(_command(one, build), env=_environment(cache, DEVICES), capture_output=True, text=True,
                             timeout=600)
  assert reference.returncode == 0, reference.stderr[-3000:]

  losses, expected_losses = _logged_losses(two), _logged_losses(one)
  assert sorted(losses) == sorted(expected_losses) == list(range(1, TOTAL_STEPS + 1))
  np.testing.assert_allclose([losses[s] for s in sorted(losses)], [expected_losses[s] for s in sorted(losses)],
                             rtol=RTOL, atol=ATOL)
  replicated = NamedSharding(Mesh(np.asarray(jax.devices()[:1]), ("data",)), PartitionSpec())
  params = evaluate.restore_params(two, TOTAL_STEPS, replicated)
  expected = evaluate.restore_params(one, TOTAL_STEPS, replicated)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL),
               params, expected)

  # Each host checkpointed its own input position.
  data = os.path.join(two, "checkpoints", str(TOTAL_STEPS), "data")
  local_rows = [json.load(open(os.path.join(data, f"process_{i}-of-2.json")))["next_index"] for i in range(2)]
  assert local_rows == [TOTAL_STEPS * BATCH_SIZE // 2] * 2  # each host's own stream, half the global batch
  single = os.path.join(one, "checkpoints", str(TOTAL_STEPS), "data", "process_0-of-1.json")
  assert json.load(open(single))["next_index"] == TOTAL_STEPS * BATCH_SIZE
