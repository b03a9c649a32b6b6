r"""Evaluates MBT checkpoints with multi-crop testing and writes results and a plot.

    python -m trainer.evaluate --config trainer/configs/tiny.py --workdir /tmp/mbt_tiny/run
    python -m trainer.evaluate --config trainer/configs/audioset_as500k.py --workdir gs://BUCKET/runs/x \
        --steps=latest --split_dir=gs://BUCKET/audioset/eval --name=eval

Each clip is seen through `config.data.num_test_crops` windows spread uniformly
over it (4 in the paper). The pipeline yields them as [B, K, ...]; the step
folds them into the batch ([B * K, ...]) for the model and averages the K
logits of each clip (Scenic's multi-crop testing). Metrics come from
trainer.metrics over the whole pass: AudioSet mAP (with per-class AP and the
classes that had no positive), VGGSound top-1 / top-5, EPIC-KITCHENS verb /
noun / action top-1.

Outputs in WORKDIR/eval/NAME/: step_XXXXXXXX.json per checkpoint (metrics,
checkpoint step, data directory), step_XXXXXXXX_per_class_ap.csv for
AudioSet, and metrics.png: each scalar metric over the checkpoint steps.
Checkpoints evaluated before are skipped unless --force.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from typing import Any, Mapping

import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import jax.numpy as jnp
import ml_collections
import numpy as np

from shared import files
from trainer import metrics as metrics_lib
from trainer.data import device_ops, input_pipeline


# ---------------------------------------------------------------------------
# One test pass.
# ---------------------------------------------------------------------------
def _crop_averaged_logits(model, params, inputs: Mapping[str, jnp.ndarray]):
  """[B, K, ...] inputs -> logits averaged over the K crops ([B, C] or {head: [B, C]})."""
  batch, crops = next(iter(inputs.values())).shape[:2]
  flat = {m: x.reshape((batch * crops,) + x.shape[2:]) for m, x in inputs.items()}
  logits, _ = model.apply({"params": params}, device_ops.finish_inputs(flat), train=False)
  return jax.tree.map(lambda x: x.reshape((batch, crops) + x.shape[1:]).mean(axis=1), logits)


def make_test_step(model, mesh: Mesh):
  """The jitted (params, [B, K, ...] inputs) -> crop-averaged logits, replicated."""
  return jax.jit(lambda params, inputs: _crop_averaged_logits(model, params, inputs),
                 out_shardings=NamedSharding(mesh, PartitionSpec()))


def test_pass(config: ml_collections.ConfigDict, model, params, directory: str, mesh: Mesh,
              step=None) -> dict[str, Any]:
  """Runs every clip of the build in `directory` through the model; returns metrics.

  Every host reads its slice of the records; batches are padded (mask 0) so
  all hosts run the same steps, and the logits are gathered on every host.
  `step` is a `make_test_step` result to reuse across passes (one is made
  otherwise).
  """
  data_sharding = NamedSharding(mesh, PartitionSpec("data"))
  if config.eval_batch_size % jax.device_count():
    raise ValueError(f"eval_batch_size {config.eval_batch_size} does not split over {jax.device_count()} devices")
  manifest, _, batches = input_pipeline.test_batches(
      config, directory, local_batch_size=config.eval_batch_size // jax.process_count(),
      process_index=jax.process_index(), process_count=jax.process_count())
  step = step or make_test_step(model, mesh)
  scores, targets, masks = [], [], []
  for local in batches:
    inputs = jax.tree.map(lambda x: jax.make_array_from_process_local_data(data_sharding, np.asarray(x)),
                          local["inputs"])
    scores.append(jax.device_get(step(params, inputs)))
    targets.append(multihost_utils.process_allgather(local["label"], tiled=True))
    masks.append(multihost_utils.process_allgather(local["mask"], tiled=True))
  if not scores:
    raise ValueError(f"{directory}: the test pass produced no batches")
  concat = lambda *xs: np.concatenate(xs)  # noqa: E731 (joins batches leaf by leaf)
  scores_all = jax.tree.map(concat, *scores)
  targets_all = jax.tree.map(concat, *targets)
  kind = input_pipeline.label_kind(config)
  result = metrics_lib.task_metrics(kind, scores_all, targets_all, np.concatenate(masks),
                                    class_names=manifest.label_map.names)
  result["data_dir"] = directory
  result["num_test_crops"] = config.data.num_test_crops
  return result


def scalar_metrics(result: Mapping[str, Any]) -> dict[str, float]:
  """The plottable numbers of a result (per-class APs and lists left out)."""
  return {k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
          and k not in ("num_test_crops",)}


def summary_line(label_kind: str, result: Mapping[str, Any]) -> str:
  name, value = metrics_lib.headline(label_kind, result)
  extra = ""
  if result.get("classes_without_positives"):
    extra = f" ({len(result['classes_without_positives'])} classes without positives excluded)"
  return f"{name} {value:.4f} over {result['num_examples']} clips{extra}"


# ---------------------------------------------------------------------------
# Results on disk.
# ---------------------------------------------------------------------------
def write_result(out_dir: str, step: int, result: Mapping[str, Any]) -> str:
  """step_XXXXXXXX.json (and the per-class AP CSV for multi-label); returns the JSON path."""
  files.makedirs(out_dir)
  stem = files.join(out_dir, f"step_{step:08d}")
  payload = {"step": step, **result}
  per_class = payload.pop("per_class_ap", None)
  if per_class is not None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["class", "average_precision"])
    for name, ap in per_class.items():
      writer.writerow([name, "" if ap is None else f"{ap:.6f}"])
    files.write_bytes(stem + "_per_class_ap.csv", buffer.getvalue().encode())
    payload["per_class_ap_file"] = f"step_{step:08d}_per_class_ap.csv"
  files.write_bytes(stem + ".json", json.dumps(payload, indent=1).encode())
  return stem + ".json"


def read_results(out_dir: str) -> list[dict]:
  """All step_*.json results of an output directory, by step."""
  results = []
  for path in files.list_files(out_dir, ".json"):
    if re.fullmatch(r"step_\d+\.json", path.rstrip("/").rsplit("/", 1)[-1]):
      results.append(files.read_json(path))
  return sorted(results, key=lambda r: r["step"])


def plot_results(results: list[dict], path: str, title: str) -> None:
  """One panel per scalar metric, over checkpoint steps, saved as a PNG."""
  import matplotlib

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  names = sorted({k for r in results for k in scalar_metrics(r) if k not in ("step", "num_examples",
                                                                             "num_unlabelled")})
  fig, axes = plt.subplots(len(names), 1, figsize=(6, 2.2 * max(len(names), 1)), squeeze=False, sharex=True)
  for axis, name in zip(axes[:, 0], names):
    points = [(r["step"], r[name]) for r in results if name in r]
    axis.plot([s for s, _ in points], [v for _, v in points], marker="o")
    axis.set_ylabel(name)
    axis.grid(alpha=0.3)
  axes[-1, 0].set_xlabel("checkpoint step")
  fig.suptitle(title)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  files.write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------------------
# Checkpoints.
# ---------------------------------------------------------------------------
def _checkpoints(workdir: str):
  import grain
  import orbax.checkpoint as ocp

  # Handlers for both items, so orbax can read their metadata ('data' is never restored here).
  return ocp.CheckpointManager(files.join(files.absolute(workdir), "checkpoints"),
                               item_handlers={"state": ocp.StandardCheckpointHandler(),
                                              "data": grain.checkpoint.CheckpointHandler()})


def restore_params(workdir: str, step: int, replicated: NamedSharding):
  """The parameters saved at `step`, replicated over this run's devices.

  The target shapes come from the checkpoint's own metadata, so evaluation
  needs neither the optimiser nor the device layout of the training run.
  """
  import orbax.checkpoint as ocp

  manager = _checkpoints(workdir)
  try:
    saved = manager.item_metadata(step)["state"]
    saved = saved.tree if hasattr(saved, "tree") else saved
    target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=replicated), saved)
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
  finally:
    manager.close()
  return restored.state["params"]


def checkpoint_steps(workdir: str) -> list[int]:
  manager = _checkpoints(workdir)
  try:
    return sorted(manager.all_steps())
  finally:
    manager.close()


def evaluate_checkpoints(config: ml_collections.ConfigDict, workdir: str, *, steps: str = "all",
                         split_dir: str | None = None, name: str = "eval", force: bool = False) -> list[dict]:
  """Evaluates checkpoints of `workdir`, writes results and the plot; returns all results.

  Args:
    steps: 'all', 'latest' or comma-separated steps.
    split_dir: build to evaluate on (default config.data.eval_dir).
    name: output subdirectory of WORKDIR/eval.
    force: re-evaluate checkpoints that already have results.
  """
  from trainer.models import build_model

  workdir = files.absolute(workdir)
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  replicated = NamedSharding(mesh, PartitionSpec())
  available = checkpoint_steps(workdir)
  if not available:
    raise FileNotFoundError(f"no checkpoints in {workdir}/checkpoints")
  if steps == "all":
    chosen = available
  elif steps == "latest":
    chosen = available[-1:]
  else:
    chosen = [int(s) for s in steps.split(",")]
    missing = sorted(set(chosen) - set(available))
    if missing:
      raise FileNotFoundError(f"no checkpoint for steps {missing} in {workdir}; have {available}")
  out_dir = files.join(files.join(workdir, "eval"), name)
  done = {r["step"] for r in read_results(out_dir)}
  model = build_model(config.model)
  kind = input_pipeline.label_kind(config)
  directory = files.absolute(split_dir or config.data.eval_dir)
  test_step = make_test_step(model, mesh)
  for step in chosen:
    if step in done and not force:
      continue
    result = test_pass(config, model, restore_params(workdir, step, replicated), directory, mesh, test_step)
    if jax.process_index() == 0:
      write_result(out_dir, step, result)
      print(f"step {step}: {summary_line(kind, result)}", flush=True)
  results = read_results(out_dir)
  if jax.process_index() == 0 and results:
    plot_results(results, files.join(out_dir, "metrics.png"), f"{config.dataset} ({name})")
  return results


def main(argv) -> None:
  del argv
  from absl import flags, logging

  logging.set_verbosity(logging.WARNING)
  flag_values = flags.FLAGS
  try:
    evaluate_checkpoints(flag_values.config, flag_values.workdir, steps=flag_values.steps,
                         split_dir=flag_values.split_dir, name=flag_values.name, force=flag_values.force)
  except input_pipeline.DATA_ERRORS as error:
    print(f"trainer.evaluate: data error ({type(error).__name__}): {error}", file=sys.stderr, flush=True)
    sys.exit(input_pipeline.DATA_ERROR_EXIT_CODE)


if __name__ == "__main__":
  from absl import flags

  from trainer import entry_point
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "Config file (the one used for training).", lock_config=True)
  flags.DEFINE_string("workdir", None, "The training run's workdir (local or gs://).")
  flags.DEFINE_string("steps", "all", "'all', 'latest' or comma-separated checkpoint steps.")
  flags.DEFINE_string("split_dir", None, "Build to evaluate on; default config.data.eval_dir.")
  flags.DEFINE_string("name", "eval", "Output subdirectory of WORKDIR/eval.")
  flags.DEFINE_bool("force", False, "Re-evaluate checkpoints that already have results.")
  flags.mark_flags_as_required(["config", "workdir"])
  entry_point.run(main)
