"""The main job, end to end on one machine with no network: data pipeline, training, evaluation.

    python -m demo --workdir runs/demo            # about 10 minutes on 2 cores
    python -m demo --workdir runs/demo_quick --quick   # the CI-sized run

1. generates a synthetic audio-visual dataset whose label needs both
   modalities (demo/dataset.py): mp4 and webm clips, a few listed ids missing;
2. serves it on 127.0.0.1 as a stand-in for YouTube and runs the real VGGSound
   build (yt-dlp, Beam's local runner, FFmpeg) into TFRecord and ArrayRecord
   shards, with a manifest and a failure ledger per split;
3. trains MBT on CPU with the real trainer (trainer/configs/demo.py): bottleneck
   fusion, vanilla cross-attention, late fusion, audio only, video only;
4. evaluates each on the test split and prints a table (top-1, GFLOPs,
   training examples/s), writes results.json, a plot (accuracy per variant and
   training curves) and attention-rollout images of test clips (paper fig. 6).

Expected: the fusion variants reach >= 0.9 top-1, the unimodal baselines
about 0.5 (each modality knows only half of the label).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Optional, Sequence

from demo import build as demo_build
from demo import dataset as demo_dataset
from demo import report

FULL = dict(num_clips=320, steps=160)
QUICK = dict(num_clips=64, steps=60)
FRAME_SHORT_SIDE = 48


def say(message: str) -> None:
  print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0],
                                   epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="runs/demo", help="where everything is written (default runs/demo)")
  parser.add_argument("--quick", action="store_true",
                      help=f"CI-sized: {QUICK['num_clips']} clips, {QUICK['steps']} steps per variant")
  parser.add_argument("--num_clips", type=int, default=None, help=f"clips with media (default {FULL['num_clips']})")
  parser.add_argument("--steps", type=int, default=None, help=f"training steps per variant (default {FULL['steps']})")
  parser.add_argument("--variants", default=",".join(report.VARIANTS),
                      help="comma-separated variants to train (default all)")
  parser.add_argument("--seed", type=int, default=0, help="dataset seed")
  parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"),
                      help="activations and matrix products (config.model.compute_dtype); auto: bfloat16 on GPU "
                           "and TPU, float32 on CPU")
  args = parser.parse_args(argv)
  sizes = QUICK if args.quick else FULL
  args.num_clips = args.num_clips or sizes["num_clips"]
  args.steps = args.steps or sizes["steps"]
  args.variants = [v for v in args.variants.split(",") if v]
  unknown = set(args.variants) - set(report.VARIANTS)
  if unknown:
    parser.error(f"unknown variants {sorted(unknown)}; choose from {list(report.VARIANTS)}")
  return args


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse_args(argv)
  logging.basicConfig(level=logging.WARNING)
  started = time.monotonic()
  os.makedirs(args.workdir, exist_ok=True)

  # 1. The dataset.
  say(f"1/4 generating {args.num_clips} synthetic clips in {args.workdir}/data")
  step = max(1, args.num_clips // 5)
  data = demo_dataset.write_demo_dataset(
      os.path.join(args.workdir, "data"), args.num_clips, seed=args.seed,
      progress=lambda done, total: done % step == 0 and say(f"    {done}/{total} clips written"))

  # 2. The real build, against the local stand-in for YouTube.
  say("2/4 building train and test shards with pipelines.build_vggsound (yt-dlp + Beam) from a local server")
  builds_dir = os.path.join(args.workdir, "builds")
  manifests = demo_build.build_splits(data, builds_dir, frame_short_side=FRAME_SHORT_SIDE)
  for split, manifest in manifests.items():
    counts = manifest.counts
    say(f"    {split}: {counts.written} clips in shards, {counts.failed} in the failure ledger "
        f"({', '.join(f'{r} {n}' for r, n in counts.failed_by_reason.items()) or 'none'})")

  # 3 and 4. Training and evaluation of every variant.
  say(f"3/4 training {len(args.variants)} variants for {args.steps} steps each on CPU")
  results = []
  for name in args.variants:
    say(f"    training {name}")
    results.append(report.train_variant(name, builds_dir, os.path.join(args.workdir, "train", name), args.steps,
                                        precision=args.precision))
    say(f"    {name}: test top-1 {results[-1]['top1']:.3f}")

  say("4/4 report")
  print(report.format_table(results))
  out = report.write_report(results, args.workdir)
  for path in out:
    say(f"    wrote {path}")
  with open(os.path.join(args.workdir, "results.json"), "w") as f:
    json.dump({"variants": [{k: v for k, v in r.items() if k != "model"} for r in results],
               "builds": {s: dataclasses.asdict(m.counts) for s, m in manifests.items()}}, f, indent=1)
  say(f"done in {(time.monotonic() - started) / 60:.1f} min")
  verdict = report.verdict(results)
  say(verdict)
  return 0


if __name__ == "__main__":
  sys.exit(main())
