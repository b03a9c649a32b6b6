"""The main job, end to end on one machine with no network: data pipeline, training, evaluation.

    python -m demo --workdir runs/demo                 # 7 to 13 minutes on 2 cores
    python -m demo --workdir runs/demo_quick --quick   # the CI-sized run

1. generates a synthetic audio-visual dataset (demo/dataset.py): mp4 and webm
   clips of a coloured scene and a tone, a few listed ids missing, with two
   labellings: factorised, (colour, pitch), and interaction, colour XOR pitch;
2. serves it on 127.0.0.1 as a stand-in for YouTube and runs the real
   VGGSound build (yt-dlp, Beam's local runner, FFmpeg) into TFRecord and
   ArrayRecord shards, with a manifest and a failure ledger per task and split;
3. trains MBT on CPU with the real trainer (trainer/configs/demo.py) on each
   task: bottleneck fusion, vanilla cross-attention, late fusion, audio only,
   video only; then, on the interaction task, bottleneck fusion at every
   fusion layer L_f (paper fig. 4);
4. evaluates each on its test split and prints one table per task (top-1,
   GFLOPs, training examples/s) and the L_f sweep, and writes results.json,
   results.png (accuracy per variant and task, training curves), lf_sweep.png
   (accuracy and GFLOPs against L_f) and rollout.png (attention rollout over
   test clips, paper fig. 6).

Expected: factorised, every fusion variant >= 0.9 top-1 and the unimodal
baselines about 0.5 (each modality knows half of the label); interaction,
bottleneck and cross-attention >= 0.9 while late fusion, audio and video stay
near 0.5 (late fusion sums per-modality evidence and cannot represent XOR);
in the sweep bottleneck fusion solves it at L_f = 1 and 2 and is at chance from
L_f = L - 1 = 3 on, at about the same GFLOPs throughout (from L_f = 0 it stayed
at chance within 400 steps in our runs).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import logging
import multiprocessing
import os
import sys
import time
from typing import Optional, Sequence

from demo import build as demo_build
from demo import dataset as demo_dataset
from demo import report
from trainer.configs import demo as demo_config

# The interaction task trains longer (trainer/configs/demo.py, TASK_STEPS says why).
FULL = dict(num_clips=256, steps=demo_config.TASK_STEPS["factorised"],
            interaction_steps=demo_config.TASK_STEPS["interaction"])
QUICK = dict(num_clips=64, steps=60, interaction_steps=150)
FRAME_SHORT_SIDE = 48
NUM_LAYERS = report.NUM_LAYERS


def say(message: str) -> None:
  print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _names(text: str, allowed: Sequence[str], what: str, parser: argparse.ArgumentParser) -> list[str]:
  names = [n for n in text.split(",") if n]
  unknown = sorted(set(names) - set(allowed))
  if unknown:
    parser.error(f"unknown {what} {unknown}; choose from {list(allowed)}")
  return names


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0],
                                   epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="runs/demo", help="where everything is written (default runs/demo)")
  parser.add_argument("--quick", action="store_true",
                      help=f"CI-sized: {QUICK['num_clips']} clips, {QUICK['steps']} and {QUICK['interaction_steps']} steps per run")
  parser.add_argument("--num_clips", type=int, default=None, help=f"clips with media (default {FULL['num_clips']})")
  parser.add_argument("--steps", type=int, default=None,
                      help=f"training steps per factorised-task run (default {FULL['steps']}, quick {QUICK['steps']})")
  parser.add_argument("--interaction_steps", type=int, default=None,
                      help=f"training steps per interaction-task run (default {FULL['interaction_steps']}, quick "
                           f"{QUICK['interaction_steps']})")
  parser.add_argument("--tasks", default=",".join(demo_dataset.TASKS),
                      help="comma-separated tasks (default both: factorised,interaction)")
  parser.add_argument("--variants", default=",".join(report.VARIANTS),
                      help="comma-separated variants to train on each task (default all)")
  parser.add_argument("--interaction_variants", default=None,
                      help="variants for the interaction task only (default: --variants)")
  parser.add_argument("--sweep", default=",".join(str(layer) for layer in range(NUM_LAYERS + 1)),
                      help="L_f values of the interaction task's bottleneck sweep, comma-separated, or 'none' "
                           f"(default 0,...,{NUM_LAYERS})")
  parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                      help="training runs at a time, each in its own process (default min(2, cores))")
  parser.add_argument("--seed", type=int, default=0, help="dataset seed")
  parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"),
                      help="activations and matrix products (config.model.compute_dtype); auto: bfloat16 on GPU "
                           "and TPU, float32 on CPU")
  args = parser.parse_args(argv)
  sizes = QUICK if args.quick else FULL
  if args.jobs < 1:
    parser.error("--jobs must be >= 1")
  args.num_clips = args.num_clips or sizes["num_clips"]
  args.steps = args.steps or sizes["steps"]
  args.interaction_steps = args.interaction_steps or sizes["interaction_steps"]
  args.tasks = _names(args.tasks, demo_dataset.TASKS, "tasks", parser)
  args.variants = _names(args.variants, report.VARIANTS, "variants", parser)
  args.interaction_variants = (args.variants if args.interaction_variants is None
                               else _names(args.interaction_variants, report.VARIANTS, "variants", parser))
  if args.sweep == "none" or demo_dataset.INTERACTION not in args.tasks:
    args.sweep = []
  else:
    try:
      args.sweep = sorted({int(layer) for layer in args.sweep.split(",") if layer})
    except ValueError:
      parser.error(f"--sweep takes comma-separated integers or 'none', got {args.sweep!r}")
    if any(not 0 <= layer <= NUM_LAYERS for layer in args.sweep):
      parser.error(f"--sweep values must lie in 0..{NUM_LAYERS}")
  return args


def plan_runs(args) -> tuple[list[report.Run], list[report.Run]]:
  """(the tables' runs, the sweep's runs not already among them)."""
  table_runs = [report.Run(task, name) for task in args.tasks
                for name in (args.interaction_variants if task == demo_dataset.INTERACTION else args.variants)]
  trained = {(run.task, run.variant, run.model_key()) for run in table_runs if run.variant in ("bottleneck", "late")}
  sweep_runs = []
  for layer in args.sweep:
    run = report.Run(demo_dataset.INTERACTION, report.SWEEP_VARIANT, layer)
    if not any(key[0] == run.task and key[2] == run.model_key() for key in trained):
      sweep_runs.append(run)
  return table_runs, sweep_runs


def train_all(runs: Sequence[report.Run], args, builds_dir: str) -> dict[report.Run, dict]:
  """Trains every run, `args.jobs` at a time (in worker processes when more than one)."""
  results: dict[report.Run, dict] = {}

  def workdir(run: report.Run) -> str:
    return os.path.join(args.workdir, "train", run.task, run.name)

  def steps(run: report.Run) -> int:
    return args.interaction_steps if run.task == demo_dataset.INTERACTION else args.steps

  def done(run: report.Run, result: dict) -> None:
    results[run] = result
    say(f"    {run.task}/{run.name}: test top-1 {result['top1']:.3f}")

  if args.jobs == 1:
    for run in runs:
      say(f"    training {run.task}/{run.name}")
      done(run, report.train_run(run, builds_dir, workdir(run), steps(run), precision=args.precision))
    return results
  # Compiling a step is single-threaded and takes most of a run this small: two
  # runs at a time keep both cores busy. Each run's progress goes to its log.
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
    futures = {}
    for run in sorted(runs, key=steps, reverse=True):  # the long runs first: both workers finish together
      log_path = os.path.join(workdir(run), "train.log")
      futures[pool.submit(report.train_run, run, builds_dir, workdir(run), steps(run), log_path,
                          args.precision)] = run
    say(f"    {len(runs)} runs, {args.jobs} at a time; progress in {args.workdir}/train/TASK/RUN/train.log")
    for future in concurrent.futures.as_completed(futures):
      done(futures[future], future.result())
  return results


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
  say(f"2/4 building {', '.join(args.tasks)} train and test shards with pipelines.build_vggsound (yt-dlp + Beam) "
      "from a local server")
  builds_dir = os.path.join(args.workdir, "builds")
  manifests = demo_build.build_tasks(data, builds_dir, args.tasks, frame_short_side=FRAME_SHORT_SIDE)
  for task, splits in manifests.items():
    for split, manifest in splits.items():
      counts = manifest.counts
      say(f"    {task}/{split}: {counts.written} clips in shards, {counts.failed} in the failure ledger "
          f"({', '.join(f'{r} {n}' for r, n in counts.failed_by_reason.items()) or 'none'})")

  # 3 and 4. Training and evaluation of every variant, then the sweep.
  table_runs, extra_sweep_runs = plan_runs(args)
  say(f"3/4 training {len(table_runs)} variants ({', '.join(args.tasks)}) and {len(extra_sweep_runs)} more L_f "
      f"settings for the sweep on CPU: {args.steps} steps per factorised run, {args.interaction_steps} per "
      "interaction run")
  results = train_all(table_runs + extra_sweep_runs, args, builds_dir)
  tables = {task: [results[run] for run in table_runs if run.task == task] for task in args.tasks}
  by_model = {(run.task, run.model_key()): results[run] for run in results}
  sweep = []
  for layer in args.sweep:
    result = by_model[(demo_dataset.INTERACTION, report.Run(demo_dataset.INTERACTION, report.SWEEP_VARIANT,
                                                     layer).model_key())]
    sweep.append({"fusion_layer": layer, "top1": result["top1"], "gflops": result["gflops"],
                  "trained_as": result["variant"]})

  say("4/4 report")
  titles = {demo_dataset.FACTORISED: f"factorised task: label = (colour, pitch), 4 classes, {args.steps} steps",
            demo_dataset.INTERACTION: f"interaction task: label = colour XOR pitch, 2 classes, "
                                      f"{args.interaction_steps} steps"}
  for task, task_results in tables.items():
    print(report.format_table(task_results, titles[task], args.jobs), flush=True)
  if sweep:
    print(report.format_sweep(sweep, NUM_LAYERS), flush=True)
  for path in report.write_report(tables, sweep, args.workdir, builds_dir):
    say(f"    wrote {path}")
  minutes = (time.monotonic() - started) / 60
  with open(os.path.join(args.workdir, "results.json"), "w") as f:
    json.dump({"tasks": {task: {"variants": task_results,
                                "builds": {s: dataclasses.asdict(m.counts) for s, m in manifests[task].items()}}
                         for task, task_results in tables.items()},
               "lf_sweep": sweep, "minutes": round(minutes, 2)}, f, indent=1)
  say(f"done in {minutes:.1f} min")
  if demo_dataset.FACTORISED in tables:
    say(report.verdict(tables[demo_dataset.FACTORISED]))
  if demo_dataset.INTERACTION in tables:
    say(report.interaction_verdict(tables[demo_dataset.INTERACTION]))
  if sweep:
    say(report.sweep_verdict(sweep, NUM_LAYERS))
  return 0


if __name__ == "__main__":
  sys.exit(main())
