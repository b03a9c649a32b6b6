"""Forward+backward step time of MBT per fusion strategy, as ratios to late fusion.

Each strategy's step (forward in training mode, a stand-in scalar loss,
gradients for every parameter) is compiled once; then all steps run
round-robin `--repeats` times and each median is reported next to late
fusion's from the same rounds, so the ratios hold up on a busy machine. Parameters are
random (no initialiser is compiled); stochastic depth and dropout are on, as
in training, though they mask rather than skip work.

  python benchmarks/model_forward.py                       # tiny and ViT-Ti
  python benchmarks/model_forward.py --sizes Ti --frames 4 --audio-seconds 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Run from anywhere.

from trainer.flops import STRATEGIES  # noqa: E402
from trainer.models import build_model, get_model_config, input_shapes  # noqa: E402


def random_params(model, inputs, seed: int = 0):
  """Random parameters of the model's shapes, scaled like a fan-in init."""
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), inputs)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) / np.sqrt(max(s.shape[0], 1)), s.dtype), shapes)


def compiled_step(config, batch_size: int):
  """A compiled forward+backward step on random data: (run() -> None, compile seconds)."""
  model = build_model(config)
  rng = np.random.default_rng(1)
  shapes = input_shapes(config, batch_size)
  inputs = {name: jnp.asarray(rng.normal(size=shape), jnp.float32) for name, shape in shapes.items()}
  variables = random_params(model, inputs)

  @jax.jit
  def step(variables, inputs, key):
    def stand_in_loss(params):
      logits, _ = model.apply({"params": params}, inputs, train=True, rngs={"dropout": key})
      return jnp.mean(logits**2)

    return jax.value_and_grad(stand_in_loss)(variables["params"])

  start = time.perf_counter()
  jax.block_until_ready(step(variables, inputs, jax.random.key(0)))
  compile_seconds = time.perf_counter() - start
  return (lambda: jax.block_until_ready(step(variables, inputs, jax.random.key(1)))), compile_seconds


def interleaved_medians(steps: dict[str, callable], repeats: int) -> dict[str, float]:
  """Median seconds per step, timing the steps round-robin so that load drift
  on a shared machine hits every strategy alike."""
  times: dict[str, list[float]] = {label: [] for label in steps}
  for _ in range(repeats):
    for label, run in steps.items():
      start = time.perf_counter()
      run()
      times[label].append(time.perf_counter() - start)
  return {label: statistics.median(values) for label, values in times.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument(
      "--sizes", type=lambda s: s.split(","), default=["tiny", "Ti"], help="comma-separated ViT sizes (default tiny,Ti)"
  )
  parser.add_argument("--batch-size", type=int, default=2, help="examples per step (default 2)")
  parser.add_argument("--frames", type=int, default=8, help="RGB frames (default 8)")
  parser.add_argument("--image-size", type=int, default=224, help="RGB crop side (default 224)")
  parser.add_argument("--audio-seconds", type=float, default=8.0, help="spectrogram span (default 8)")
  parser.add_argument("--fusion-layers", type=lambda s: [int(v) for v in s.split(",")], default=None,
                      help="comma-separated L_f values (default 0 and 2L/3, the paper's 8 of 12)")
  parser.add_argument("--strategies", type=lambda s: s.split(","), default=[s for s in STRATEGIES if s != "late"],
                      help="comma-separated strategies besides late fusion, always measured")
  parser.add_argument("--repeats", type=int, default=5, help="timed rounds over all strategies (default 5)")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, batch {args.batch_size}, "
        f"{args.frames} frames {args.image_size}px + {args.audio_seconds} s audio, median of {args.repeats}")
  for size in args.sizes:
    base = dict(
        size=size, num_frames=args.frames, image_size=args.image_size, audio_seconds=args.audio_seconds,
        stochastic_depth_rate=0.3,
    )
    num_layers = get_model_config(fusion_type="late", **base).num_layers
    fusion_layers = args.fusion_layers or [0, num_layers * 2 // 3]
    configs = {("late", "-"): get_model_config(fusion_type="late", **base)}
    for strategy in args.strategies:
      for fusion_layer in fusion_layers:
        configs[(strategy, fusion_layer)] = get_model_config(fusion_layer=fusion_layer, **STRATEGIES[strategy], **base)
    steps, compile_seconds = {}, {}
    for label, config in configs.items():
      steps[label], compile_seconds[label] = compiled_step(config, args.batch_size)
    medians = interleaved_medians(steps, args.repeats)
    print(f"\nViT-{size}: {'strategy':>24} {'L_f':>4} {'ms/step':>9} {'x late':>7} {'compile s':>9}")
    for (strategy, fusion_layer), seconds in medians.items():
      ratio = seconds / medians[("late", "-")]
      compiling = compile_seconds[(strategy, fusion_layer)]
      print(f"{'':8}{strategy:>24} {fusion_layer:>4} {seconds * 1e3:9.1f} {ratio:7.2f} {compiling:9.1f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
