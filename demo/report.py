"""The demo's training half: train each MBT variant, measure it, and show the results."""

from __future__ import annotations

import os
import statistics
from typing import Any, Sequence

import numpy as np

from trainer import flops, train
from trainer.configs import demo as demo_config

VARIANTS = tuple(demo_config.VARIANTS)  # bottleneck, cross_attention, late, audio, video
FUSION_VARIANTS = ("bottleneck", "cross_attention", "late")
UNIMODAL_VARIANTS = ("audio", "video")


def variant_config(name: str, builds_dir: str, steps: int, precision: str = "auto"):
  config = demo_config.get_config(name)
  config.model.compute_dtype = precision
  config.data.train_dir = os.path.join(builds_dir, "train")
  config.data.eval_dir = os.path.join(builds_dir, "test")
  config.total_steps = steps
  config.checkpoint_every_steps = steps
  config.eval_every_steps = steps
  return config


def train_variant(name: str, builds_dir: str, workdir: str, steps: int, precision: str = "auto") -> dict[str, Any]:
  """Trains one variant with the real trainer; returns its figures."""
  config = variant_config(name, builds_dir, steps, precision)
  outcome = train.train_and_evaluate(config, workdir)
  _, evaluation = outcome["eval"][-1]
  history = outcome["history"]
  # The first logging window holds the compilation; the rate is the steady one after it.
  rates = [metrics["examples_per_s"] for _, metrics in history[1:]] or [history[-1][1]["examples_per_s"]]
  return {
      "variant": name,
      "top1": float(evaluation["top1"]),
      "num_test_clips": int(evaluation["num_examples"]),
      "gflops": flops.forward_gflops(config.model),
      "examples_per_s": float(statistics.median(rates)),
      "loss_curve": [(step, metrics["loss"]) for step, metrics in history],
      "model": (config, outcome["state"]["params"]),
  }


def format_table(results: Sequence[dict]) -> str:
  lines = [f"{'variant':<16} {'test top-1':>10} {'GFLOPs/clip':>12} {'train ex/s':>11}"]
  for r in results:
    lines.append(f"{r['variant']:<16} {r['top1']:>10.3f} {r['gflops']:>12.4f} {r['examples_per_s']:>11.1f}")
  return "\n".join(lines)


def verdict(results: Sequence[dict]) -> str:
  """Whether fusion beat both unimodal baselines, as the demo claims."""
  by_name = {r["variant"]: r["top1"] for r in results}
  fused = [by_name[v] for v in FUSION_VARIANTS if v in by_name]
  single = [by_name[v] for v in UNIMODAL_VARIANTS if v in by_name]
  if not fused or not single:
    return "trained a subset of the variants: no fusion-versus-unimodal verdict"
  return (f"fusion variants {min(fused):.2f}-{max(fused):.2f} top-1 against unimodal {min(single):.2f}-"
          f"{max(single):.2f}: {'fusion wins' if min(fused) > max(single) else 'NO CLEAR WIN'}")


def write_report(results: Sequence[dict], workdir: str) -> list[str]:
  """The accuracy/curves plot and, for the first fusion variant, attention-rollout images."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  paths = []
  figure, (bars, curves) = plt.subplots(1, 2, figsize=(11, 4))
  names = [r["variant"] for r in results]
  colours = ["tab:blue" if n in FUSION_VARIANTS else "tab:gray" for n in names]
  bars.bar(names, [r["top1"] for r in results], color=colours)
  bars.axhline(0.5, color="k", linestyle=":", linewidth=1, label="one modality's ceiling")
  bars.set_ylim(0, 1.05)
  bars.set_ylabel("test top-1")
  bars.set_title("accuracy per variant")
  bars.legend(loc="lower right")
  bars.tick_params(axis="x", rotation=20)
  for r in results:
    steps, losses = zip(*r["loss_curve"])
    curves.plot(steps, losses, marker="o", markersize=3, label=r["variant"])
  curves.set_xlabel("step")
  curves.set_ylabel("training loss")
  curves.set_title("training curves")
  curves.legend()
  figure.tight_layout()
  paths.append(os.path.join(workdir, "results.png"))
  figure.savefig(paths[-1], dpi=110)
  plt.close(figure)

  fused = [r for r in results if r["variant"] in FUSION_VARIANTS]
  if fused:
    paths.append(write_rollout(fused[0], workdir))
  return paths


def write_rollout(result: dict, workdir: str, num_clips: int = 4) -> str:
  """Frames of test clips with the CLS-to-patch relevance of attention rollout over them."""
  import jax
  import matplotlib.pyplot as plt

  from trainer.data import device_ops, input_pipeline
  from trainer.models import build_model
  from trainer.models.rollout import rgb_relevance_maps

  config, params = result["model"]
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
  figure.suptitle(f"attention rollout, {result['variant']}: RGB CLS relevance per frame (test clips)")
  figure.tight_layout()
  path = os.path.join(workdir, "rollout.png")
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path
