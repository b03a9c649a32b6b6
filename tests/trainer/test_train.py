"""End-to-end training on tiny synthetic builds: learning, exact resume (also after SIGKILL), evaluation."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from shared import files, layout
from trainer import evaluate, train
from trainer.configs import tiny
from trainer.data import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Every run has the schedule of a 400-step run (one compiled program for all) and
# stops at STOP_STEP, so a killed process is always stopped long before its end.
TOTAL_STEPS, STOP_STEP = 400, 40
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
  """Runs of one config share compiled programs: the tiny model takes ~30 s to compile on 2 cores."""
  from jax.experimental.compilation_cache import compilation_cache as cache

  directory = str(tmp_path_factory.mktemp("jax_cache"))
  previous = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  cache.reset_cache()
  yield directory
  jax.config.update("jax_compilation_cache_dir", previous[0])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", previous[1])
  cache.reset_cache()


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
  root = tmp_path_factory.mktemp("builds")
  for dataset, extra in (("vggsound", {}), ("epic_kitchens", {"class_heads": {"verb": 4, "noun": 5}}),
                         ("audioset", {})):
    synthetic.write_synthetic_build(str(root / dataset / "train"), dataset=dataset, num_clips=16,
                                    seconds=[2.0, 1.0], **extra)
    synthetic.write_synthetic_build(str(root / dataset / "eval"), dataset=dataset, split="eval", num_clips=8,
                                    seconds=[2.0, 0.5], seed=1, **extra)
  return root


def _config(builds, arg=None, **overrides):
  config = tiny.get_config(arg)
  dataset = config.dataset
  config.data.train_dir = str(builds / dataset / "train")
  config.data.eval_dir = str(builds / dataset / "eval")
  config.model.num_layers = 2
  config.model.fusion_layer = 1
  config.mixup.alpha = 0.0
  config.data.color_jitter.probability = 0.0  # grayscale clips hide the synthetic class colour
  config.total_steps = TOTAL_STEPS
  config.stop_after_steps = STOP_STEP
  config.warmup_steps = 5
  config.learning_rate = 0.03  # smooth at the flat start of the long schedule
  config.checkpoint_every_steps = 10
  config.log_every_steps = 5
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


def _assert_same_state(a, b):
  same = jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), jax.device_get(a), jax.device_get(b))
  assert all(jax.tree.leaves(same))


@pytest.fixture(scope="module")
def uninterrupted(builds, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  return workdir, train.train_and_evaluate(_config(builds), workdir)


def test_tiny_model_learns_the_synthetic_classes(uninterrupted, builds, monkeypatch):
  workdir, result = uninterrupted
  losses = [metrics["loss"] for _, metrics in result["history"]]
  assert losses[0] > 1.2 and np.mean(losses[-4:]) < 0.3, losses  # starts near log(4) = 1.39
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20", "30", "40"]
  # Evaluation: a result per checkpoint, the plot, and a clearly learned task.
  monkeypatch.chdir(os.path.dirname(workdir))  # a relative --workdir, as typed by hand
  results = evaluate.evaluate_checkpoints(_config(builds), os.path.basename(workdir), steps="10,40")
  assert [r["step"] for r in results] == [10, 40]
  assert results[-1]["top1"] >= 0.75 and results[-1]["num_examples"] == 8
  with open(os.path.join(workdir, "eval", "eval", "step_00000040.json")) as f:
    assert json.load(f)["top1"] == results[-1]["top1"]
  assert os.path.getsize(os.path.join(workdir, "eval", "eval", "metrics.png")) > 1000


def test_tensorboard_scalars_are_written(uninterrupted):
  import tensorflow as tf

  workdir, _ = uninterrupted
  events = tf.io.gfile.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
  tags = {value.tag for path in events for event in tf.compat.v1.train.summary_iterator(path)
          for value in event.summary.value}
  assert {"train/loss", "train/learning_rate", "train/examples_per_s", "train/input_wait_fraction"} <= tags


def test_stopped_and_resumed_run_matches_the_uninterrupted_run_bitwise(uninterrupted, builds, tmp_path):
  _, reference = uninterrupted
  workdir = str(tmp_path)
  first = train.train_and_evaluate(_config(builds, stop_after_steps=15), workdir)
  assert first["history"][-1][0] == 15
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10"]  # stopping does not save
  resumed = train.train_and_evaluate(_config(builds), workdir)
  _assert_same_state(reference["state"], resumed["state"])
  assert [m["loss"] for s, m in resumed["history"]] == [m["loss"] for s, m in reference["history"] if s > 10]


def test_a_gcs_workdir_holds_checkpoints_logs_and_results_and_resumes_bitwise(uninterrupted, builds, gcs):
  """--workdir gs://... against the emulator: orbax (TensorStore and etils), TensorBoard, config, evaluation."""
  import tensorflow as tf

  _, reference = uninterrupted
  workdir = gcs.url("runs", "tiny")
  train.train_and_evaluate(_config(builds, stop_after_steps=15), workdir)
  resumed = train.train_and_evaluate(_config(builds), workdir)
  _assert_same_state(reference["state"], resumed["state"])
  assert [m["loss"] for s, m in resumed["history"]] == [m["loss"] for s, m in reference["history"] if s > 10]
  for step in (10, 20, 30, 40):
    assert files.exists(files.join(workdir, "checkpoints", str(step), "_CHECKPOINT_METADATA"))
  assert files.read_json(files.join(workdir, "config.json"))["total_steps"] == TOTAL_STEPS
  events = files.list_files(files.join(workdir, "tensorboard"))
  assert len(events) == 2  # one per run
  steps = set()
  for path in events:
    with files.local_copy(path) as local:
      steps |= {event.step for event in tf.compat.v1.train.summary_iterator(local) if event.summary.value}
  assert steps == {5, 10, 15, 20, 25, 30, 35, 40}
  results = evaluate.evaluate_checkpoints(_config(builds), workdir, steps="40")
  assert files.read_json(files.join(workdir, "eval", "eval", "step_00000040.json"))["top1"] == results[-1]["top1"]
  assert files.exists(files.join(workdir, "eval", "eval", "metrics.png"))


def test_killed_process_resumes_to_the_same_parameters(builds, tmp_path, compilation_cache):
  """Run from another directory with relative --workdir and data paths (orbax wants absolute ones)."""
  workdir = str(tmp_path / "run")
  config = _config(builds)
  relative = lambda path: os.path.relpath(path, tmp_path)  # noqa: E731
  flags = [f"--config.data.train_dir={relative(config.data.train_dir)}",
           f"--config.data.eval_dir={relative(config.data.eval_dir)}",
           "--config.model.num_layers=2", "--config.model.fusion_layer=1", "--config.mixup.alpha=0.0",
           "--config.data.color_jitter.probability=0.0", f"--config.total_steps={TOTAL_STEPS}",
           "--config.warmup_steps=5", "--config.learning_rate=0.03", "--config.checkpoint_every_steps=10",
           "--config.log_every_steps=5"]
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": compilation_cache,
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "PYTHONPATH": REPO}
  process = subprocess.Popen(
      [sys.executable, "-m", "trainer.train", f"--config={REPO}/trainer/configs/tiny.py", "--workdir=run", *flags],
      cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  committed = os.path.join(workdir, "checkpoints", "10", "commit_success.txt")
  deadline = time.time() + 240
  try:
    for line in process.stdout:
      if line.startswith("step 15/") or time.time() > deadline:
        while not os.path.exists(committed) and time.time() < deadline:
          time.sleep(0.005)
        process.send_signal(signal.SIGKILL)  # mid-run, possibly mid-save
        break
  finally:
    process.kill()
    process.wait()
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())
  assert steps and steps[0] == 10 and steps[-1] < TOTAL_STEPS, steps
  # Resume a few steps past the last checkpoint; compare with a run never interrupted.
  stop = steps[-1] + 7
  resumed = train.train_and_evaluate(_config(builds, stop_after_steps=stop), workdir)
  assert resumed["history"][0][0] > steps[-1] and resumed["history"][-1][0] == stop  # logged when stopping
  reference = train.train_and_evaluate(_config(builds, stop_after_steps=stop), str(tmp_path / "reference"))
  _assert_same_state(reference["state"], resumed["state"])


def test_tfdata_pipeline_trains_and_resumes_exactly(builds, tmp_path):
  tfrecord = {"data.format": layout.TFRECORD}
  reference = train.train_and_evaluate(_config(builds, **tfrecord), str(tmp_path / "a"))
  train.train_and_evaluate(_config(builds, **tfrecord, stop_after_steps=13), str(tmp_path / "b"))
  resumed = train.train_and_evaluate(_config(builds, **tfrecord), str(tmp_path / "b"))
  _assert_same_state(reference["state"], resumed["state"])
  assert np.mean([metrics["loss"] for _, metrics in reference["history"][-4:]]) < 0.3


def test_epic_audio_only_baseline_with_mixup_reports_action_accuracy(builds, tmp_path):
  config = _config(builds, "epic_kitchens,audio", **{"model.num_layers": 1, "total_steps": 6, "stop_after_steps": None,
                                                     "eval_every_steps": 6, "mixup.alpha": 0.3,
                                                     "log_every_steps": 1})
  result = train.train_and_evaluate(config, str(tmp_path))
  assert tuple(config.model.modalities) == ("spectrogram",)
  # Step 1: the zero-initialised head predicts uniformly, whatever the (mixed) targets.
  assert result["history"][0][1]["loss"] == pytest.approx((np.log(4) + np.log(5)) / 2, rel=1e-5)
  (step, evaluation), = result["eval"]
  assert step == 6 and evaluation["num_examples"] == 8
  assert {"verb_top1", "noun_top1", "action_top1"} <= set(evaluation)


def test_audioset_video_only_baseline_reports_map_and_per_class_ap(builds, tmp_path):
  config = _config(builds, "audioset,video", **{"model.num_layers": 1, "total_steps": 6, "stop_after_steps": None,
                                                 "mixup.alpha": 0.3})
  train.train_and_evaluate(config, str(tmp_path))
  results = evaluate.evaluate_checkpoints(config, str(tmp_path), steps="latest")
  assert results[-1]["step"] == 6 and 0.0 < results[-1]["mAP"] <= 1.0
  csv_path = os.path.join(str(tmp_path), "eval", "eval", "step_00000006_per_class_ap.csv")
  with open(csv_path) as f:
    rows = f.read().splitlines()
  assert rows[0] == "class,average_precision" and len(rows) == 1 + 4


def test_a_data_error_ends_the_run_with_its_message_and_exit_status(tmp_path):
  """A corrupt TFRecord shard: a one-line message naming it, exit status 3, and no hang at exit."""
  build = tmp_path / "build"
  synthetic.write_synthetic_build(str(build), num_clips=8, seconds=1.0, formats=(layout.TFRECORD,))
  shard = sorted(build.glob("*-of-*"))[0]
  data = bytearray(shard.read_bytes())
  data[len(data) // 2] ^= 0xFF  # inside a record's data: only its CRC can tell
  shard.write_bytes(bytes(data))
  env = {**os.environ, "PYTHONPATH": REPO}
  # The timeout only turns a hang into a failure; a healthy run exits in seconds.
  finished = subprocess.run(
      [sys.executable, "-m", "trainer.train", f"--config={REPO}/trainer/configs/tiny.py", "--workdir=run",
       "--config.data.train_dir=build", "--config.data.format=tfrecord"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  last_line = finished.stderr.strip().splitlines()[-1]
  assert finished.returncode == 3, finished.stderr[-3000:]
  assert last_line.startswith("trainer.train: data error (ShardError): a TFRecord shard is missing, truncated or "
                              "corrupt"), last_line
  assert f"corrupt ({shard}): corrupted record" in last_line  # the damaged file, not just the candidates
