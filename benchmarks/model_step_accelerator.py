r"""ViT-B MBT training step on an accelerator: step time, MFU and where the time goes.

    python benchmarks/model_step_accelerator.py                  # H100/H200: the full matrix, batch 32
    python benchmarks/model_step_accelerator.py --quick          # any machine: tiny model, seconds

One SGD step (forward, backward, update) of ViT-B MBT at the paper's inputs
(8 frames of 224x224 and 8 s of audio: 1568 + 400 patches) on random data, for
late fusion and bottleneck fusion at L_f=8, each in float32 and in bfloat16
(config.model.compute_dtype; parameters and optimiser state stay float32),
each with the fused attention kernel (jax.nn.dot_product_attention: cuDNN's
flash attention on GPU in bfloat16) and with the explicit einsum / softmax
path. All variants are compiled first and then timed round-robin (median of
--repeats rounds). Every ratio is against a figure measured in the same run:
each variant against late fusion with the same precision and attention,
bfloat16 against float32, fused against explicit.

MFU = model FLOPs per step / step time / the chip's peak (--peak_tflops; dense
bf16 of an H100 or H200 SXM: 989). Model FLOPs come from XLA's cost analysis
of the float32 explicit-attention step before backend optimisation (the
fused kernel is an opaque custom call to the cost analysis), the same count
for all four variants of a strategy.

Profile: a few steps of each variant under jax.profiler.trace, parsed with
jax.profiler.ProfileData: device time per HLO op, attributed through the
compiled module's op_name metadata to a part of the model (attention core,
attention projections, MLP, LayerNorm, tokenisers, head and loss, optimiser)
and to the forward or backward pass; the top ops are printed too. Ops with no
op_name are XLA's layout copies and conversions where their names say so
(their own part), else "unattributed".

Needs only jax, flax, optax and ml_collections. --json writes every figure.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainer.models import build_model, get_model_config, input_shapes  # noqa: E402
from trainer.models.attention import EXPLICIT_SCOPE, FUSED_SCOPE  # noqa: E402

PRECISIONS = ("float32", "bfloat16")
ATTENTION = ("explicit", "fused")
# (name, fusion_type, fusion layer or None for L) of the paper's comparison.
STRATEGIES = {"late": ("late", None), "bottleneck": ("bottleneck", 8)}
NUM_CLASSES = 527

# Where an HLO op's time goes: the first part whose key is in the op's scope
# (op_name metadata). Ops outside the model's scope are the loss, the
# gradient clipping and the SGD update.
PARTS = (
    ("attention core", (FUSED_SCOPE, EXPLICIT_SCOPE)),
    ("attention projections", ("/attention/",)),
    ("MLP", ("/mlp/",)),
    ("LayerNorm", ("_norm",)),
    ("tokenisers", ("tokenizer_",)),
    ("head", ("/head/",)),
    ("other model ops", ("MBT",)),
)
OUTSIDE_MODEL = "loss and optimiser"
# Ops without any op_name: copies, transposes and conversions that XLA inserts
# to change layouts (named by what they fuse, e.g. transpose_copy_fusion.5,
# wrapped_convert.2) are their own part; the rest stays "unattributed".
XLA_LAYOUT = "layout copies and conversions (XLA-inserted)"
UNATTRIBUTED = "unattributed"
_LAYOUT_WORDS = {"copy", "bitcast", "transpose", "convert"}
_FUSION_WORDS = {"fusion", "wrapped"}
# Quick mode compiles a tiny model eight times on a CPU: skip XLA's backend
# optimisations there (the figures only show that the script works).
QUICK_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def model_config(strategy: str, precision: str, attention: str, quick: bool, size: str = "B"):
  fusion_type, fusion_layer = STRATEGIES[strategy]
  if quick:  # one layer of d=32 (fusing, but for late fusion) on 2 frames of 32x32 and 0.32 s of audio
    config = get_model_config("tiny", fusion_type=fusion_type, num_layers=1,
                              fusion_layer=1 if fusion_layer is None else 0, num_frames=2, image_size=32,
                              audio_seconds=0.32, num_classes=NUM_CLASSES, stochastic_depth_rate=0.3,
                              compute_dtype=precision, fused_attention=attention == "fused")
  else:
    config = get_model_config(size, fusion_type=fusion_type, fusion_layer=12 if fusion_layer is None else fusion_layer,
                              num_classes=NUM_CLASSES, stochastic_depth_rate=0.3, compute_dtype=precision,
                              fused_attention=attention == "fused")
  return config


def lowered_step(config, batch: int):
  """(lowered train step, abstract inputs, init function) for a model config."""
  model = build_model(config)
  shapes = {name: jax.ShapeDtypeStruct(shape, jnp.float32) for name, shape in input_shapes(config, batch).items()}
  labels = jnp.zeros((batch, NUM_CLASSES), jnp.float32)
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9))

  def loss_fn(params, inputs, rng):
    _, intermediates = model.apply({"params": params}, inputs, train=True, rngs={"dropout": rng})
    per_modality = list(intermediates["logits_per_modality"].values())
    return sum(optax.sigmoid_binary_cross_entropy(l, labels).sum(-1).mean() for l in per_modality) / len(per_modality)

  def step(params, opt_state, inputs, rng):
    loss, grads = jax.value_and_grad(loss_fn)(params, inputs, rng)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  abstract_params = jax.eval_shape(lambda x: model.init(jax.random.key(1), x, train=False)["params"], shapes)
  lowered = jax.jit(step, donate_argnums=(0, 1)).lower(
      abstract_params, jax.eval_shape(optimizer.init, abstract_params), shapes, jax.random.key(2))
  return lowered, shapes, abstract_params, optimizer


def model_tflop(lowered) -> float:
  """TFLOP per step from XLA's count before backend optimisation (every matrix product visible)."""
  analysis = lowered.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis["flops"]) / 1e12


def random_params(abstract_params):
  """Parameters of the model's shapes, N(0, 1 / fan_in), drawn by numpy: nothing to compile."""
  rng = np.random.default_rng(3)
  return jax.tree.map(lambda leaf: jnp.asarray(
      rng.standard_normal(leaf.shape, np.float32) / np.sqrt(max(leaf.shape[0] if leaf.shape else 1, 1)), leaf.dtype),
      abstract_params)


_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=")
_OP_NAME = re.compile(r"metadata=\{[^}]*op_name=\"([^\"]*)\"")
_CALLS = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")


def op_scopes(compiled_text: str) -> dict[str, str]:
  """HLO instruction name -> op_name metadata (JAX's scopes) of a compiled module.

  A fusion often carries no metadata itself: it gets the scope of the root (or
  else the first instruction with one) of the computation it calls.
  """
  own, calls, computation_scope = {}, {}, {}
  computation, roots = None, {}
  for line in compiled_text.splitlines():
    header = _COMPUTATION.match(line)
    if header and "=" not in line.split("(")[0]:
      computation = header.group(1)
      continue
    instruction = _INSTRUCTION.match(line)
    if not instruction:
      continue
    name, op_name, callee = instruction.group(2), _OP_NAME.search(line), _CALLS.search(line)
    if op_name:
      own[name] = op_name.group(1)
      if computation is not None:
        if instruction.group(1):
          roots[computation] = op_name.group(1)
        computation_scope.setdefault(computation, op_name.group(1))
    if callee:
      calls[name] = callee.group(1)
  scopes = dict(own)
  for name, callee in calls.items():
    if name not in scopes:
      inherited = roots.get(callee) or computation_scope.get(callee)
      if inherited:
        scopes[name] = inherited
  return scopes


def unscoped_part(hlo_op: str) -> str:
  """The part of an op that carries no op_name: XLA_LAYOUT for XLA's layout copies, else UNATTRIBUTED."""
  words = set(re.sub(r"[.\d]+$", "", hlo_op).split("_"))
  return XLA_LAYOUT if words & _LAYOUT_WORDS and words <= _LAYOUT_WORDS | _FUSION_WORDS else UNATTRIBUTED


def part_of(op_name: str) -> str:
  for part, keys in PARTS:
    if any(key in op_name for key in keys):
      return part
  return OUTSIDE_MODEL


def device_op_times(trace_dir: str, module_name: str) -> dict[str, float]:
  """Total seconds per HLO op of `module_name` in a jax.profiler trace.

  Uses the device planes (GPU, TPU) when there are any, else the host threads
  that ran the CPU backend's ops; events carry the op in their 'hlo_op' stat.
  """
  from jax.profiler import ProfileData

  paths = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
  if not paths:
    return {}
  profile = ProfileData.from_file(paths[0])
  planes = [p for p in profile.planes if p.name.startswith("/device:")] or [
      p for p in profile.planes if p.name.startswith("/host:CPU")]
  times: dict[str, float] = collections.defaultdict(float)
  for plane in planes:
    for line in plane.lines:
      for event in line.events:
        stats = dict(event.stats)
        if str(stats.get("hlo_module", "")).split("(")[0] != module_name:
          continue
        times[str(stats.get("hlo_op", event.name))] += event.duration_ns / 1e9
  return dict(times)


def profile_breakdown(compiled, run_step, steps: int, module_name: str) -> dict[str, Any]:
  """Shares of device time per part of the model (forward / backward) and the top ops."""
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir):
      for _ in range(steps):
        run_step()
    times = device_op_times(trace_dir, module_name)
  total = sum(times.values())
  if not total:
    return {"parts": {}, "top_ops": [], "profiled_s_per_step": 0.0}
  scopes = op_scopes(compiled.as_text())
  parts: dict[str, float] = collections.defaultdict(float)
  for op, seconds in times.items():
    scope = scopes.get(op, "")
    direction = "backward" if "transpose(" in scope else "forward"
    parts[f"{part_of(scope)} ({direction})" if scope else unscoped_part(op)] += seconds / total
  top = sorted(times.items(), key=lambda item: -item[1])[:8]
  return {"parts": dict(sorted(parts.items(), key=lambda item: -item[1])),
          "top_ops": [{"op": op, "share": seconds / total, "scope": scopes.get(op, "")} for op, seconds in top],
          "profiled_s_per_step": total / steps}


def prepare(config, batch: int, compiler_options=None) -> dict[str, Any]:
  """A variant ready to run: its compiled step on random data, its XLA FLOP count, whether cuDNN attention is in it."""
  lowered, shapes, abstract_params, optimizer = lowered_step(config, batch)
  compiled = lowered.compile(compiler_options)
  rng = np.random.default_rng(0)
  inputs = {name: jnp.asarray(rng.standard_normal(s.shape, np.float32)) for name, s in shapes.items()}
  state = {"params": random_params(abstract_params)}
  state["opt"] = jax.jit(optimizer.init)(state["params"])
  key = jax.random.key(2)

  def run_step():
    state["params"], state["opt"], loss = compiled(state["params"], state["opt"], inputs, key)
    loss.block_until_ready()

  run_step()  # warm-up
  return {"run_step": run_step, "compiled": compiled, "xla_tflop_per_step": model_tflop(lowered),
          "cudnn_attention": "__cudnn$fmha" in compiled.as_text()}


def run(args) -> dict[str, Any]:
  """Measures every variant; returns {'rows': [...], 'device': ..., ...}.

  All variants are compiled first, then timed round-robin (`repeats` rounds,
  one step of each per round; the median counts), so drifting clocks or a
  shared host affect them alike; then each is profiled.
  """
  device = jax.devices()[0]
  rows, ready = [], {}
  for strategy in args.strategies:
    # Model FLOPs: the float32 explicit step's count (a fused kernel is opaque to it).
    tflop = model_tflop(lowered_step(model_config(strategy, "float32", "explicit", args.quick, args.size),
                                     args.batch)[0])
    for precision in args.precisions:
      for attention in args.attention:
        row = {"strategy": strategy, "precision": precision, "attention": attention, "tflop_per_step": tflop}
        rows.append(row)
        try:
          variant = prepare(model_config(strategy, precision, attention, args.quick, args.size), args.batch,
                            QUICK_COMPILER_OPTIONS if args.quick else None)
        except Exception as error:  # one failing variant (e.g. a kernel this GPU lacks) must not hide the rest
          row["error"] = f"{type(error).__name__}: {error}"
          continue
        row.update(xla_tflop_per_step=variant["xla_tflop_per_step"], cudnn_attention=variant["cudnn_attention"])
        ready[id(row)] = variant
  times = {key: [] for key in ready}
  for _ in range(args.repeats):
    for key, variant in ready.items():
      start = time.perf_counter()
      variant["run_step"]()
      times[key].append(time.perf_counter() - start)
  for row in rows:
    if id(row) in ready:
      row["step_s"] = statistics.median(times[id(row)])
      if args.profile_steps:
        variant = ready[id(row)]
        row["profile"] = profile_breakdown(variant["compiled"], variant["run_step"], args.profile_steps, "jit_step")
    report_row(row, args)
  add_ratios(rows)
  return {"device": f"{device.platform}:{device.device_kind}", "device_count": jax.device_count(),
          "batch": args.batch, "size": "tiny" if args.quick else args.size, "peak_tflops": args.peak_tflops,
          "rows": rows}


def add_ratios(rows: list[dict]) -> None:
  """Step-time ratios against the same run's baselines (None where a baseline is missing)."""
  def find(**keys):
    found = [r for r in rows if all(r[k] == v for k, v in keys.items()) and "step_s" in r]
    return found[0]["step_s"] if found else None

  for row in rows:
    if "step_s" not in row:
      continue
    same = dict(precision=row["precision"], attention=row["attention"])
    late = find(strategy="late", **same)
    fp32 = find(strategy=row["strategy"], precision="float32", attention=row["attention"])
    explicit = find(strategy=row["strategy"], precision=row["precision"], attention="explicit")
    row["vs_late"] = row["step_s"] / late if late else None
    row["speedup_bf16_over_fp32"] = fp32 / row["step_s"] if fp32 and row["precision"] == "bfloat16" else None
    row["speedup_fused_over_explicit"] = explicit / row["step_s"] if explicit and row["attention"] == "fused" else None


def report_row(row: dict, args) -> None:
  name = f"{row['strategy']:<11} {row['precision']:<9} {row['attention']:<9}"
  if "error" in row:
    print(f"{name} failed: {row['error'][:300]}", flush=True)
    return
  mfu = row["tflop_per_step"] / row["step_s"] / args.peak_tflops
  row["mfu"] = mfu
  row["examples_per_s"] = args.batch / row["step_s"]
  print(f"{name} {1000 * row['step_s']:>9.1f} ms {row['examples_per_s']:>8.1f} ex/s {100 * mfu:>6.1f}% MFU"
        f"{'  (cuDNN attention)' if row['cudnn_attention'] else ''}", flush=True)
  profile = row.get("profile")
  if profile and profile["parts"]:
    parts = ", ".join(f"{part} {100 * share:.0f}%" for part, share in list(profile["parts"].items())[:6])
    print(f"{'':32}time: {parts}", flush=True)
    for op in profile["top_ops"][:args.top_ops]:
      print(f"{'':34}{100 * op['share']:5.1f}% {op['op']:<28} {op['scope'][-90:]}", flush=True)


def summary(result: dict) -> str:
  """The ratio table: each variant against late fusion, bf16 against fp32, fused against explicit."""
  lines = [f"{'strategy':<11} {'precision':<9} {'attention':<9} {'ms/step':>9} {'MFU':>6} {'x late':>7} "
           f"{'bf16 speedup':>12} {'fused speedup':>13}"]
  fmt = lambda value, spec: format(value, spec) if value is not None else "-"  # noqa: E731
  for row in result["rows"]:
    if "step_s" not in row:
      continue
    lines.append(f"{row['strategy']:<11} {row['precision']:<9} {row['attention']:<9} {1000 * row['step_s']:>9.1f} "
                 f"{100 * row['mfu']:>5.1f}% {fmt(row['vs_late'], '>7.2f')} "
                 f"{fmt(row['speedup_bf16_over_fp32'], '>12.2f')} {fmt(row['speedup_fused_over_explicit'], '>13.2f')}")
  return "\n".join(lines)


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=None, help="global batch (default 32; --quick: 2)")
  parser.add_argument("--repeats", type=int, default=None, help="timed steps per variant (default 10; --quick: 2)")
  parser.add_argument("--profile_steps", type=int, default=3, help="steps traced per variant (0: no profile)")
  parser.add_argument("--top_ops", type=int, default=5, help="top HLO ops printed per variant")
  parser.add_argument("--strategies", default="late,bottleneck", help="comma-separated: late, bottleneck")
  parser.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated: float32, bfloat16")
  parser.add_argument("--attention", default=",".join(ATTENTION), help="comma-separated: explicit, fused")
  parser.add_argument("--peak_tflops", type=float, default=989.0, help="the chip's dense bf16 peak, TFLOP/s")
  parser.add_argument("--size", default="B", choices=("Ti", "S", "B"), help="ViT size at the paper's inputs")
  parser.add_argument("--quick", action="store_true", help="a 1-layer d=32 model on tiny inputs (tests, CPUs)")
  parser.add_argument("--json", help="also write every figure to this JSON file")
  args = parser.parse_args(argv)
  args.batch = args.batch or (2 if args.quick else 32)
  args.repeats = args.repeats or (2 if args.quick else 10)
  for name, allowed in (("strategies", STRATEGIES), ("precisions", PRECISIONS), ("attention", ATTENTION)):
    values = [v for v in getattr(args, name).split(",") if v]
    unknown = sorted(set(values) - set(allowed))
    if unknown or not values:
      parser.error(f"--{name}: unknown {unknown}; choose from {list(allowed)}")
    setattr(args, name, values)
  if "late" not in args.strategies:
    args.strategies.insert(0, "late")  # every ratio is against late fusion
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  device = jax.devices()[0]
  print(f"{device.platform}:{device.device_kind} x{jax.device_count()}; batch {args.batch}; "
        f"{'quick (tiny model)' if args.quick else f'ViT-{args.size}, 1568 + 400 patches'}; "
        f"peak {args.peak_tflops} TFLOP/s",
        flush=True)
  result = run(args)
  print("\n" + summary(result))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
