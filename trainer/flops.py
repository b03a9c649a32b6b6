"""GFLOPs per example of MBT's forward pass per fusion strategy (paper fig. 3 right).

FLOPs come from XLA's cost analysis of the compiled forward pass (batch of
one, logits only). Parameters are abstract (jax.eval_shape), so nothing is
initialised and ViT-B compiles in about a second per model on CPU.

XLA counts a multiply-add as 2 FLOPs; papers that quote "GFLOPs" from
MAC counters (ViT-B/16 at 224 px: 17.6) count it as 1.

  python -m trainer.flops --output flops.png           # ViT-B, 8 frames + 8 s
  python -m trainer.flops --quick --output flops.png   # L_f in {0, L/2, L}
"""

from __future__ import annotations

import argparse
import sys
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from trainer.models import build_model, get_model_config, input_shapes

# Strategy label -> model config overrides. Late fusion ignores L_f.
STRATEGIES: dict[str, dict[str, str]] = {
    "bottleneck": dict(fusion_type="bottleneck"),
    "self_attention": dict(fusion_type="self_attention"),
    "cross_attention_eq6": dict(fusion_type="cross_attention", cross_attention_impl="eq6"),
    "cross_attention_scenic": dict(fusion_type="cross_attention", cross_attention_impl="scenic"),
    "late": dict(fusion_type="late"),
}
# Bottleneck fusion must cost about what late fusion costs (paper sec. 4.3.1).
BOTTLENECK_TOLERANCE = 0.05

Table = dict[str, dict[int, float]]


def forward_gflops(config, use_compiled: bool = True) -> float:
  """GFLOPs of one example's forward pass (eval mode) of the configured model.

  Args:
    config: a model config.
    use_compiled: cost analysis of the compiled executable (default), or of
      the lowered HLO before XLA optimises it (faster, nearly the same).
  """
  model = build_model(config)
  inputs = {name: jax.ShapeDtypeStruct(shape, jnp.float32) for name, shape in input_shapes(config, 1).items()}
  params = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), inputs)
  lowered = jax.jit(lambda p, x: model.apply(p, x, train=False)[0]).lower(params, inputs)
  analysis = lowered.compile().cost_analysis() if use_compiled else lowered.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older JAX: one dict per device.
    analysis = analysis[0]
  return float(analysis["flops"]) / 1e9


def flops_table(
    fusion_layers: Sequence[int],
    strategies: Sequence[str] = tuple(STRATEGIES),
    use_compiled: bool = True,
    log=None,
    **config_kwargs,
) -> Table:
  """GFLOPs per strategy and fusion layer.

  Args:
    fusion_layers: the L_f values.
    strategies: keys of STRATEGIES.
    use_compiled: see `forward_gflops`.
    log: optional callable taking a progress line.
    **config_kwargs: passed to `get_model_config` (size, num_frames, ...).

  Returns:
    strategy -> L_f -> GFLOPs per example.
  """
  table: Table = {}
  for strategy in strategies:
    table[strategy] = {}
    late_value = None
    for fusion_layer in fusion_layers:
      if strategy == "late" and late_value is not None:
        table[strategy][fusion_layer] = late_value  # The same model at every L_f.
        continue
      config = get_model_config(fusion_layer=fusion_layer, **STRATEGIES[strategy], **config_kwargs)
      table[strategy][fusion_layer] = forward_gflops(config, use_compiled)
      late_value = table[strategy][fusion_layer] if strategy == "late" else None
      if log:
        log(f"{strategy:>24} L_f={fusion_layer:<3d} {table[strategy][fusion_layer]:9.2f} GFLOPs")
  return table


def bottleneck_violations(table: Table, tolerance: float = BOTTLENECK_TOLERANCE) -> list[str]:
  """L_f values where bottleneck fusion costs more than (1 + tolerance) x late."""
  return [
      f"L_f={layer}: bottleneck {value:.2f} vs late {table['late'][layer]:.2f} GFLOPs"
      for layer, value in table["bottleneck"].items()
      if abs(value / table["late"][layer] - 1) > tolerance
  ]


def format_table(table: Table) -> str:
  """A text table: one row per strategy, one column per L_f, plus x late."""
  layers = list(next(iter(table.values())))
  digits = 1 if max(max(values.values()) for values in table.values()) >= 10 else 4
  header = f"{'GFLOPs / example':>24} " + " ".join(f"{'L_f=' + str(layer):>9}" for layer in layers)
  lines = [header]
  for strategy, values in table.items():
    lines.append(f"{strategy:>24} " + " ".join(f"{values[layer]:9.{digits}f}" for layer in layers))
  if "late" in table:
    lines.append("ratio to late fusion:")
    for strategy, values in table.items():
      lines.append(f"{strategy:>24} " + " ".join(f"{values[layer] / table['late'][layer]:9.3f}" for layer in layers))
  return "\n".join(lines)


def plot_table(table: Table, output: str, title: str) -> None:
  """Writes GFLOPs against L_f, one line per strategy, as a PNG."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  figure, axes = plt.subplots(figsize=(6, 4.5))
  for strategy, values in table.items():
    linestyle = "--" if strategy == "late" else "-"
    axes.plot(list(values), list(values.values()), marker="o", linestyle=linestyle, label=strategy)
  axes.set_xlabel("fusion layer $L_f$")
  axes.set_ylabel("GFLOPs per example (XLA, multiply-add = 2)")
  axes.set_xticks(list(next(iter(table.values()))))
  axes.set_title(title)
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  figure.savefig(output, dpi=120)
  plt.close(figure)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m trainer.flops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--size", default="B", help="ViT size: tiny, Ti, S or B (default B)")
  parser.add_argument("--frames", type=int, default=8, help="RGB frames (default 8)")
  parser.add_argument("--image-size", type=int, default=224, help="RGB crop side in pixels (default 224)")
  parser.add_argument("--audio-seconds", type=float, default=8.0, help="spectrogram span in seconds (default 8)")
  parser.add_argument("--bottleneck-tokens", type=int, default=4, help="B for bottleneck fusion (default 4)")
  parser.add_argument(
      "--fusion-layers", type=lambda s: [int(v) for v in s.split(",")], default=None,
      help="comma-separated L_f values (default 0,2,...,L)",
  )
  parser.add_argument(
      "--strategies", type=lambda s: s.split(","), default=list(STRATEGIES),
      help=f"comma-separated subset of {','.join(STRATEGIES)}",
  )
  parser.add_argument("--quick", action="store_true", help="only L_f in {0, L/2, L}, cost analysis before compilation")
  parser.add_argument("--output", default=None, help="write the plot to this PNG path")
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  config_kwargs: Mapping = dict(
      size=args.size, num_frames=args.frames, image_size=args.image_size, audio_seconds=args.audio_seconds,
      num_bottleneck_tokens=args.bottleneck_tokens,
  )
  num_layers = get_model_config(**config_kwargs, fusion_type="late").num_layers
  fusion_layers = args.fusion_layers or (
      [0, num_layers // 2, num_layers] if args.quick else list(range(0, num_layers + 1, 2))
  )
  unknown = set(args.strategies) - set(STRATEGIES)
  if unknown:
    raise SystemExit(f"unknown strategies {sorted(unknown)}; choose from {list(STRATEGIES)}")
  strategies = list(args.strategies) if "late" in args.strategies else list(args.strategies) + ["late"]
  progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
  table = flops_table(fusion_layers, strategies, use_compiled=not args.quick, log=progress, **config_kwargs)

  config = get_model_config(**config_kwargs, fusion_type="late")
  shapes = input_shapes(config, 1)
  print(f"ViT-{args.size}, inputs {dict(shapes)}, B={args.bottleneck_tokens}")
  print(format_table(table))
  violations = bottleneck_violations(table) if "bottleneck" in table else []
  if violations:
    print(f"FAIL: bottleneck fusion is not within {BOTTLENECK_TOLERANCE:.0%} of late fusion: " + "; ".join(violations))
  elif "bottleneck" in table:
    print(f"OK: bottleneck fusion is within {BOTTLENECK_TOLERANCE:.0%} of late fusion at every L_f")
  if args.output:
    plot_table(table, args.output, f"MBT ViT-{args.size}: forward GFLOPs per example")
    print(f"plot written to {args.output}")
  return 1 if violations else 0


if __name__ == "__main__":
  sys.exit(main())
