"""The demo's training half: train each MBT variant, measure it, and show the results."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import statistics
from typing import Any, Optional, Sequence

import numpy as np

from demo import build as demo_build
from demo.dataset import FACTORISED
from trainer import flops, train
from trainer.configs import demo as demo_config

VARIANTS = tuple(demo_config.VARIANTS)  # bottleneck, cross_attention, late, audio, video
FUSION_VARIANTS = ("bottleneck", "cross_attention", "late")
# Fusion inside the encoder: what the interaction task needs.
EARLY_FUSION_VARIANTS = ("bottleneck", "cross_attention")
UNIMODAL_VARIANTS = ("audio", "video")
SWEEP_VARIANT = "bottleneck"
# The interaction task's claim, as the CI-size test asserts it.
INTERACTION_FUSED_AT_LEAST = 0.9
INTERACTION_LATE_AT_MOST = 0.65
NUM_LAYERS = demo_config.get_config().model.num_layers


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of the demo.

  Attributes:
    task: FACTORISED or INTERACTION.
    variant: a trainer/configs/demo.py variant.
    fusion_layer: L_f, or None for the variant's own.
  """

  task: str
  variant: str
  fusion_layer: Optional[int] = None

  @property
  def name(self) -> str:
    return self.variant if self.fusion_layer is None else f"{self.variant}_lf{self.fusion_layer}"

  def model_key(self) -> tuple[str, str, int]:
    """(modalities, fusion type, L_f): two runs with the same key on a task train the same model."""
    modalities, fusion_type, fusion_layer = demo_config.VARIANTS[self.variant]
    layer = fusion_layer if self.fusion_layer is None else self.fusion_layer
    if fusion_type == "late" or layer == NUM_LAYERS:
      # Bottleneck fusion from L_f = L never fuses: it is the late fusion model, parameters and all.
      return modalities, "late", NUM_LAYERS
    return modalities, fusion_type, layer


def variant_config(name: str, task: str, builds_dir: str, steps: int, fusion_layer: Optional[int] = None,
                   precision: str = "auto"):
  config = demo_config.get_config(f"{name},{task}")
  config.model.compute_dtype = precision
  config.data.train_dir = demo_build.split_dir(builds_dir, task, "train")
  config.data.eval_dir = demo_build.split_dir(builds_dir, task, "test")
  if fusion_layer is not None:
    config.model.fusion_layer = fusion_layer
  config.total_steps = steps
  config.checkpoint_every_steps = steps
  config.eval_every_steps = steps
  return config


_GFLOPS: dict[str, float] = {}


def gflops(model_config) -> float:
  """Forward GFLOPs per clip, once per architecture.

  The cost analysis of the lowered forward pass: no XLA compilation (seconds
  per variant on a CPU), and for these models the same count as the compiled
  one's to a few parts in a thousand.
  """
  key = model_config.to_json()
  if key not in _GFLOPS:
    _GFLOPS[key] = flops.forward_gflops(model_config, use_compiled=False)
  return _GFLOPS[key]


def train_variant(name: str, task: str, builds_dir: str, workdir: str, steps: int,
                  fusion_layer: Optional[int] = None, log_path: Optional[str] = None,
                  precision: str = "auto") -> dict[str, Any]:
  """Trains one variant on one task with the real trainer; returns its figures (plain Python values).

  With `log_path`, the trainer's progress lines go to that file instead of
  stdout (runs in parallel would interleave them).
  """
  config = variant_config(name, task, builds_dir, steps, fusion_layer, precision)
  if log_path is None:
    outcome = train.train_and_evaluate(config, workdir)
  else:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log):
      outcome = train.train_and_evaluate(config, workdir)
  _, evaluation = outcome["eval"][-1]
  history = outcome["history"]
  # The first logging window holds the compilation; the rate is the steady one after it.
  rates = [metrics["examples_per_s"] for _, metrics in history[1:]] or [history[-1][1]["examples_per_s"]]
  return {
      "task": task,
      "variant": name,
      "fusion_type": config.model.fusion_type,
      "fusion_layer": int(config.model.fusion_layer),
      "top1": float(evaluation["top1"]),
      "num_test_clips": int(evaluation["num_examples"]),
      "gflops": gflops(config.model),
      "examples_per_s": float(statistics.median(rates)),
      "loss_curve": [(int(step), float(metrics["loss"])) for step, metrics in history],
      "steps": steps,
      "workdir": workdir,
  }


def train_run(run: Run, builds_dir: str, workdir: str, steps: int, log_path: Optional[str] = None,
              precision: str = "auto") -> dict:
  """train_variant for a Run, from scratch (a top-level function: worker processes call it)."""
  shutil.rmtree(workdir, ignore_errors=True)  # a previous demo's checkpoint would be resumed, not retrained
  return train_variant(run.variant, run.task, builds_dir, workdir, steps, run.fusion_layer, log_path, precision)


def restore_variant(result: dict, builds_dir: str):
  """(config, params) of a trained variant, from its workdir's last checkpoint."""
  import jax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec

  from trainer import evaluate

  config = variant_config(result["variant"], result["task"], builds_dir, result["steps"], result["fusion_layer"])
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  step = evaluate.checkpoint_steps(result["workdir"])[-1]
  return config, evaluate.restore_params(result["workdir"], step, NamedSharding(mesh, PartitionSpec()))


def format_table(results: Sequence[dict], title: str = "", jobs: int = 1) -> str:
  if jobs > 1:
    title = f"{title} (train ex/s measured with {jobs} runs sharing the CPU)".strip()
  lines = [title] if title else []
  lines.append(f"{'variant':<16} {'L_f':>4} {'test top-1':>10} {'GFLOPs/clip':>12} {'train ex/s':>11}")
  for r in results:
    lines.append(f"{r['variant']:<16} {r['fusion_layer']:>4} {r['top1']:>10.3f} {r['gflops']:>12.4f} "
                 f"{r['examples_per_s']:>11.1f}")
  return "\n".join(lines)


def format_sweep(sweep: Sequence[dict], num_layers: int) -> str:
  lines = [f"interaction task, bottleneck fusion against the fusion layer (L_f = {num_layers}: late fusion)",
           f"{'L_f':>4} {'test top-1':>10} {'GFLOPs/clip':>12}"]
  lines += [f"{r['fusion_layer']:>4} {r['top1']:>10.3f} {r['gflops']:>12.4f}" for r in sweep]
  return "\n".join(lines)


def verdict(results: Sequence[dict]) -> str:
  """Whether fusion beat both unimodal baselines on the factorised task, as the demo claims."""
  by_name = {r["variant"]: r["top1"] for r in results}
  fused = [by_name[v] for v in FUSION_VARIANTS if v in by_name]
  single = [by_name[v] for v in UNIMODAL_VARIANTS if v in by_name]
  if not fused or not single:
    return "factorised: trained a subset of the variants, no fusion-versus-unimodal verdict"
  return (f"factorised: fusion variants {min(fused):.2f}-{max(fused):.2f} top-1 against unimodal {min(single):.2f}-"
          f"{max(single):.2f}: {'fusion wins' if min(fused) > max(single) else 'NO CLEAR WIN'}")


def interaction_verdict(results: Sequence[dict]) -> str:
  """Whether fusion inside the encoder solved XOR while late fusion and one modality could not."""
  by_name = {r["variant"]: r["top1"] for r in results}
  inside = {v: by_name[v] for v in EARLY_FUSION_VARIANTS if v in by_name}
  outside = {v: by_name[v] for v in ("late",) + UNIMODAL_VARIANTS if v in by_name}
  if not inside or not outside:
    return "interaction: trained a subset of the variants, no verdict"
  holds = min(inside.values()) >= INTERACTION_FUSED_AT_LEAST and max(outside.values()) <= INTERACTION_LATE_AT_MOST
  described = ", ".join(f"{v} {t:.2f}" for v, t in {**inside, **outside}.items())
  return (f"interaction: {described}: " + ("only fusion inside the encoder learns colour XOR pitch" if holds
                                            else "NO CLEAR WIN"))


def sweep_verdict(sweep: Sequence[dict], num_layers: int) -> str:
  if not sweep:
    return "L_f sweep: not run"
  points = ", ".join(f"L_f={r['fusion_layer']}: {r['top1']:.2f}" for r in sweep)
  return (f"L_f sweep: {points} (bottleneck fusion reaches a CLS only with two or more fusion layers, "
          f"so L_f >= {num_layers - 1} is late fusion)")


def write_report(tables: dict[str, Sequence[dict]], sweep: Sequence[dict], workdir: str, builds_dir: str) -> list[str]:
  """results.png (accuracy per variant and task, training curves), lf_sweep.png and rollout.png."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  paths = []
  figure, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.2))
  width = 0.8 / max(len(tables), 1)
  for offset, (task, results) in enumerate(tables.items()):
    names = [r["variant"] for r in results]
    positions = [VARIANTS.index(n) + (offset - (len(tables) - 1) / 2) * width for n in names]
    bars.bar(positions, [r["top1"] for r in results], width=width, label=f"{task} task",
             color="tab:blue" if task == FACTORISED else "tab:orange")
    for r in results:
      curve_steps, losses = zip(*r["loss_curve"])
      curves.plot(curve_steps, losses, marker="o", markersize=3, linestyle="-" if task == FACTORISED else "--",
                  label=f"{task}: {r['variant']}")
  bars.set_xticks(range(len(VARIANTS)), VARIANTS, rotation=20)
  bars.axhline(0.5, color="k", linestyle=":", linewidth=1,
               label="0.5: one modality's ceiling (factorised), chance (interaction)")
  bars.set_ylim(0, 1.3)  # room for the legend above the bars
  bars.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
  bars.set_ylabel("test top-1")
  bars.set_title("accuracy per variant")
  bars.legend(loc="upper right", fontsize=8)
  curves.set_xlabel("step")
  curves.set_ylabel("training loss")
  curves.set_title("training curves")
  curves.legend(fontsize=7, ncol=2)
  figure.tight_layout()
  paths.append(os.path.join(workdir, "results.png"))
  figure.savefig(paths[-1], dpi=110)
  plt.close(figure)

  if sweep:
    paths.append(write_sweep_plot(sweep, workdir))
  fused = [r for r in tables.get(FACTORISED, ()) if r["variant"] in FUSION_VARIANTS]
  if fused:
    paths.append(write_rollout(fused[0], *restore_variant(fused[0], builds_dir), workdir))
  return paths


def write_sweep_plot(sweep: Sequence[dict], workdir: str) -> str:
  """Test top-1 and GFLOPs per clip against L_f (paper fig. 4, on the interaction task)."""
  import matplotlib.pyplot as plt

  layers = [r["fusion_layer"] for r in sweep]
  num_layers = max(layers)
  figure, accuracy = plt.subplots(figsize=(6.5, 4.2))
  accuracy.plot(layers, [r["top1"] for r in sweep], marker="o", color="tab:orange", label="test top-1")
  accuracy.axhline(0.5, color="k", linestyle=":", linewidth=1, label="chance")
  accuracy.set_ylim(0, 1.05)
  accuracy.set_xlabel(f"fusion layer $L_f$ (layers $\\geq L_f$ fuse; $L_f$ = {num_layers}: late fusion)")
  accuracy.set_ylabel("test top-1 (interaction task)")
  accuracy.set_xticks(layers)
  cost = accuracy.twinx()
  cost.plot(layers, [r["gflops"] for r in sweep], marker="s", color="tab:gray", linestyle="--", label="GFLOPs")
  cost.set_ylabel("GFLOPs per clip (forward)")
  low, high = min(r["gflops"] for r in sweep), max(r["gflops"] for r in sweep)
  cost.set_ylim(0, high * 1.25 if high > 0 else 1)
  handles = accuracy.get_legend_handles_labels()[0] + cost.get_legend_handles_labels()[0]
  accuracy.legend(handles, [h.get_label() for h in handles], loc="lower left", fontsize=8)
  accuracy.set_title(f"bottleneck fusion vs $L_f$ (GFLOPs {low:.4f}-{high:.4f})")
  accuracy.grid(alpha=0.3)
  figure.tight_layout()
  path = os.path.join(workdir, "lf_sweep.png")
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path


def write_rollout(result: dict, config, params, workdir: str, num_clips: int = 4) -> str:
  """Frames of test clips with the CLS-to-patch relevance of attention rollout over them."""
  import jax
  import matplotlib.pyplot as plt

  from trainer.data import device_ops, input_pipeline
  from trainer.models import build_model
  from trainer.models.rollout import rgb_relevance_maps

  _, _, batches = input_pipeline.test_batches(config, config.data.eval_dir, local_batch_size=num_clips)
  batch = next(iter(batches))
  inputs = device_ops.finish_inputs({m: np.asarray(x)[:, 0] for m, x in batch["inputs"].items()})
  model = build_model(config.model)
  _, intermediates = model.apply({"params": params}, inputs, train=False, return_attention=True)
  maps = np.asarray(jax.device_get(rgb_relevance_maps(intermediates["attention"], config.model)))
  frames = np.asarray(jax.device_get(inputs["rgb"]))
  count, num_frames = maps.shape[0], frames.shape[1]
  figure, axes = plt.subplots(count, num_frames, figsize=(2 * num_frames, 2 * count), squeeze=False)
  for i in range(count):
    for t in range(num_frames):
      image = frames[i, t]
      image = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
      relevance = maps[i, min(t, maps.shape[1] - 1)]
      relevance = np.kron(relevance, np.ones((image.shape[0] // relevance.shape[0],
                                              image.shape[1] // relevance.shape[1])))
      axes[i, t].imshow(image)
      axes[i, t].imshow(relevance, cmap="inferno", alpha=0.5)
      axes[i, t].set_axis_off()
  figure.suptitle(f"attention rollout, {result['variant']} ({result['task']} task): RGB CLS relevance per frame")
  figure.tight_layout()
  path = os.path.join(workdir, "rollout.png")
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path
