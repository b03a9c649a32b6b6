"""ViT-B MBT training-step time and model FLOPs utilisation on an accelerator.

    python benchmarks/model_step_accelerator.py --batch 32 --peak_tflops 989

One SGD step (forward, backward, update) of ViT-B MBT with the paper's inputs
(8 frames of 224x224 and 8 s of audio: 1568 + 400 patches) on random data, for
each fusion strategy at L_f=8 (late fusion as the baseline of the same run).
FLOPs per step come from XLA's cost analysis of the lowered step (before
backend optimisation, which on GPUs hides matrix products in library calls);
MFU is
FLOPs / step time / the chip's peak (``--peak_tflops``: dense bf16 of an H100 or
H200 SXM is 989). Parameters are float32; matrix products run at the
backend's default precision (TF32 on Hopper GPUs), or bfloat16 with
``--bf16_inputs``. Needs only jax, flax, optax and ml_collections.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.models import build_model, get_model_config, input_shapes  # noqa: E402


def step_figures(fusion_type: str, fusion_layer: int, batch: int, repeats: int, bf16_inputs: bool,
                 run: bool = True) -> dict:
  """TFLOP per step (always) and the median step time (when `run`)."""
  config = get_model_config("B", fusion_type=fusion_type, fusion_layer=fusion_layer, num_classes=527,
                            stochastic_depth_rate=0.3)
  model = build_model(config)
  dtype = jnp.bfloat16 if bf16_inputs else jnp.float32
  shapes = {name: jax.ShapeDtypeStruct(shape, dtype) for name, shape in input_shapes(config, batch).items()}
  labels = jnp.zeros((batch, 527), jnp.float32)
  optimizer = optax.sgd(0.1, momentum=0.9)

  def loss_fn(p, x, rng):
    _, intermediates = model.apply({"params": p}, x, train=True, rngs={"dropout": rng})
    per_modality = list(intermediates["logits_per_modality"].values())
    return sum(optax.sigmoid_binary_cross_entropy(l, labels).sum(-1).mean() for l in per_modality) / len(per_modality)

  def step(p, s, x, rng):
    loss, grads = jax.value_and_grad(loss_fn)(p, x, rng)
    updates, s = optimizer.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss

  init = lambda x: model.init(jax.random.key(1), x, train=False)["params"]  # noqa: E731
  abstract_params = jax.eval_shape(init, shapes)
  lowered = jax.jit(step).lower(abstract_params, jax.eval_shape(optimizer.init, abstract_params), shapes,
                                jax.random.key(2))
  # The HLO before backend optimisation: on GPUs the compiled step's matrix
  # products become library calls that the compiled cost analysis leaves out.
  analysis = lowered.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  figures = {"tflop_per_step": float(analysis["flops"]) / 1e12}
  if not run:
    return figures
  keys = iter(jax.random.split(jax.random.key(0), 4))
  inputs = {name: jax.random.normal(next(keys), s.shape, s.dtype) for name, s in shapes.items()}
  params = jax.jit(init)(inputs)
  opt_state = optimizer.init(params)
  compiled = lowered.compile()
  rng = jax.random.key(2)
  params, opt_state, loss = compiled(params, opt_state, inputs, rng)  # warm-up
  loss.block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    params, opt_state, loss = compiled(params, opt_state, inputs, rng)
    loss.block_until_ready()
    times.append(time.perf_counter() - start)
  figures["step_s"] = statistics.median(times)
  return figures


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--fusion_layer", type=int, default=8)
  parser.add_argument("--strategies", default="late,bottleneck,cross_attention,self_attention")
  parser.add_argument("--peak_tflops", type=float, default=989.0, help="the chip's dense peak, TFLOP/s")
  parser.add_argument("--bf16_inputs", action="store_true")
  parser.add_argument("--flops_only", action="store_true", help="print FLOPs per step without running (any host)")
  args = parser.parse_args(argv)
  print(f"devices: {jax.devices()}; batch {args.batch}; L_f={args.fusion_layer}")
  print(f"{'strategy':<16} {'step ms':>8} {'vs late':>8} {'TFLOP/step':>11} {'ex/s':>8} {'MFU':>6}")
  baseline = None
  for strategy in args.strategies.split(","):
    layer = 12 if strategy == "late" else args.fusion_layer
    figures = step_figures(strategy, layer, args.batch, args.repeats, args.bf16_inputs, run=not args.flops_only)
    if args.flops_only:
      print(f"{strategy:<16} {'-':>8} {'-':>8} {figures['tflop_per_step']:>11.2f}")
      continue
    baseline = baseline or figures["step_s"]
    mfu = figures["tflop_per_step"] / figures["step_s"] / args.peak_tflops
    print(f"{strategy:<16} {1000 * figures['step_s']:>8.1f} {figures['step_s'] / baseline:>7.2f}x "
          f"{figures['tflop_per_step']:>11.2f} {args.batch / figures['step_s']:>8.0f} {100 * mfu:>5.1f}%", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
