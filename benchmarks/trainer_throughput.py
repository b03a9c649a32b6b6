r"""Trainer throughput on this machine: input pipeline vs plain JPEG decoding, and tiny-model training.

    python benchmarks/trainer_throughput.py [--clips 24] [--examples 96] [--train_steps 60]

Measures, in one run, on synthetic builds written to a temporary directory
(the paper's setting: 10 s clips of 250 textured 340x256 JPEG frames, 8 frames
over t = 8 s, 224 crops, 800 x 128 log-mel with SpecAugment). The one-thread
loops are timed in CPU time of their thread (on a shared machine, wall time
also counts the time other jobs hold the core), interleaved with each other,
best of 6 rounds after a warm-up round:

1. The floor: decoding with Pillow exactly the 8 JPEG frames each example
   uses (same records, same window starts), examples/s on one thread.
2. `ClipPreprocessor.train_example` on records already in memory.
3. ArrayRecord read + preprocessing as the grain path does it by default
   (grain_input.ArrayRecordShards: each record verified once by the library,
   then read in place from the mapped file), and with every read verified
   (the library returns the whole record and checks its hash: the default
   before). Also the bytes each example reads from the file (4 KiB pages
   touched) next to the bytes it uses (frames, log-mel steps, context).
4. The layout proposal (WORKSPACE.md): the same clips written as one
   ArrayRecord record per frame and per log-mel step (plus one for the
   context), so that a verified read fetches only what an example uses; its
   verified reads of those records, added to (2).
5. The grain pipeline end to end (threads, batching) and the tf.data
   pipeline, examples/s on all cores.
6. Training the tiny config on CPU: examples/s after compilation, and the
   fraction of step time spent waiting for input.
All figures that matter are ratios to the floor of the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time

import numpy as np
from PIL import Image


def _rate(count: int, seconds: float) -> float:
  return count / max(seconds, 1e-9)


def _interleaved_best(timed: dict, rounds: int = 7) -> dict:
  """Best seconds of each loop over rounds that run every loop once (the first round warms up)."""
  best = {name: float("inf") for name in timed}
  for round_index in range(rounds):
    for name, run in timed.items():
      seconds = run()
      if round_index:
        best[name] = min(best[name], seconds)
  return best


def _frame_granular_copy(path: str, records: list, prep) -> tuple[list, object]:
  """The layout proposal: per clip, a context record, then one record per frame and per log-mel step.

  Returns (per clip: (first record id, frame count), an ArrayRecordReader of the copy).
  """
  from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter
  from shared import contract, example_proto
  from trainer.data import clip_reader

  writer = ArrayRecordWriter(path, "group_size:1,uncompressed")
  index, next_id = [], 0
  for serialized in records:
    clip = clip_reader.parse_clip(serialized)
    example = example_proto.SequenceExample()
    example.ParseFromString(serialized)
    parts = [example.context.SerializeToString()]
    parts += [clip.jpeg(k) for k in range(clip.num_frames)]
    steps = example.feature_lists.feature_list[contract.MELSPEC_KEY].feature
    parts += [step.SerializeToString() for step in steps]
    for part in parts:
      writer.write(part)
    index.append((next_id, clip.num_frames))
    next_id += len(parts)
  writer.close()
  return index, ArrayRecordReader(path, "readahead_buffer_size:0")


def measure_pipeline(root: str, clips: int, examples: int) -> dict:
  from shared import layout
  from trainer.data import clip_reader, grain_input, manifest as manifest_lib, preprocess, sampling, synthetic, tfdata_input

  directory = os.path.join(root, "paper_like")
  synthetic.write_synthetic_build(directory, num_clips=clips, seconds=10.0, frame_size=(340, 256), texture=True,
                                  num_shards=2)
  manifest = manifest_lib.read_manifest(directory)
  paths = manifest.shard_paths(layout.ARRAYRECORD)
  source = grain_input.ArrayRecordShards(paths)  # the default: verified once, then mapped
  verified = grain_input.ArrayRecordShards(paths, verify_every_read=True)
  prep = preprocess.ClipPreprocessor(
      window=sampling.WindowSpec.paper(8.0, 8), modalities=("rgb", "spectrogram"), label_kind=preprocess.ONE_HOT,
      num_classes=4, melspec_mean=manifest.melspec_mean, melspec_std=manifest.melspec_std, crop_size=224,
      min_resize=256, seed=0)
  records = [source.read_verified(i) for i in range(len(source))]  # also the default path's one verified read
  jobs = [(records[i % clips], i // clips, i % clips) for i in range(examples)]

  # The floor: Pillow decoding of exactly the frames each example uses.
  frames_of_job, windows = [], []
  for serialized, epoch, index in jobs:
    clip = clip_reader.parse_clip(serialized)
    start = sampling.train_start(prep.window, clip.num_frames, np.random.default_rng([prep.seed, epoch, index]))
    frames = [int(k) for k in sampling.frame_indices(prep.window, start, clip.num_frames)]
    frames_of_job.append([clip.jpeg(k) for k in frames])
    first_row, rows = sampling.first_row(start), prep.window.spectrogram_rows
    last_step = min((first_row + rows - 1) // 100, (clip.mel_rows - 1) // 100)
    windows.append((index, frames, list(range(first_row // 100, last_step + 1))))
  mean_jpeg_bytes = float(np.mean([len(f) for frames in frames_of_job for f in frames]))

  def decode_floor():
    began = time.thread_time()
    for frames in frames_of_job:
      for jpeg in frames:
        np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    return time.thread_time() - began

  def pipeline():
    began = time.thread_time()
    for serialized, epoch, index in jobs:
      prep.train_example(serialized, epoch, index)
    return time.thread_time() - began

  def read_and_pipeline(shards):
    def run():
      began = time.thread_time()
      for _, epoch, index in jobs:
        prep.train_example(shards[index], epoch, index)
      return time.thread_time() - began
    return run

  layout_index, layout_reader = _frame_granular_copy(os.path.join(root, "frame_granular.array_record"), records, prep)

  def proposal_reads():
    began = time.thread_time()
    for index, frames, steps in windows:
      first, num_frames = layout_index[index]
      wanted = [first] + [first + 1 + k for k in frames] + [first + 1 + num_frames + step for step in steps]
      layout_reader.read(wanted)
    return time.thread_time() - began

  best = _interleaved_best({"floor": decode_floor, "pipeline": pipeline, "read_default": read_and_pipeline(source),
                            "read_verified": read_and_pipeline(verified), "proposal_reads": proposal_reads})
  floor_rate, pipeline_rate = _rate(examples, best["floor"]), _rate(examples, best["pipeline"])

  # Bytes per example on the default path: file pages touched vs bytes used.
  tracked = grain_input.ArrayRecordShards(paths, track_pages=True)
  touched, used = [], []
  for _, epoch, index in jobs[:clips]:
    tracked.read_verified(index)
    mapped = tracked[index]
    prep.train_example(mapped, epoch, index)
    touched.append(mapped.touched_bytes)
    used.append(mapped.used_bytes)

  cores = os.cpu_count() or 1
  dataset = grain_input.train_dataset(source, prep, batch_size=8, seed=0, read_threads=cores)
  iterator = iter(dataset)
  next(iterator)
  began = time.perf_counter()
  batches = max(1, examples // 8)
  for _ in range(batches):
    next(iterator)
  grain_rate = _rate(batches * 8, time.perf_counter() - began)

  shards = tfdata_input.TFRecordShards(manifest.shard_paths(layout.TFRECORD))
  tf_batches = tfdata_input.numpy_batches(tfdata_input.train_dataset(
      shards, prep, batch_size=8, seed=0, parallel_calls=cores), shards)
  next(tf_batches)
  began = time.perf_counter()
  for _ in range(batches):
    next(tf_batches)
  tfdata_rate = _rate(batches * 8, time.perf_counter() - began)
  proposal_rate = _rate(examples, best["pipeline"] + best["proposal_reads"])
  return {
      "jpeg_frame_kbytes": mean_jpeg_bytes / 1000,
      "frame_size": "340x256",
      "record_mbytes": float(np.mean([len(r) for r in records])) / 1e6,
      "bytes_read_per_example_mbytes": float(np.mean(touched)) / 1e6,
      "bytes_used_per_example_mbytes": float(np.mean(used)) / 1e6,
      "jpeg_decode_floor_examples_per_s_per_core": floor_rate,
      "pipeline_examples_per_s_per_core": pipeline_rate,
      "pipeline_over_floor": pipeline_rate / floor_rate,
      "read_default_examples_per_s_per_core": _rate(examples, best["read_default"]),
      "read_default_over_floor": _rate(examples, best["read_default"]) / floor_rate,
      "read_verified_examples_per_s_per_core": _rate(examples, best["read_verified"]),
      "read_verified_over_floor": _rate(examples, best["read_verified"]) / floor_rate,
      "proposal_examples_per_s_per_core": proposal_rate,
      "proposal_over_floor": proposal_rate / floor_rate,
      "cores": cores,
      "grain_examples_per_s_all_cores": grain_rate,
      "tfdata_examples_per_s_all_cores": tfdata_rate,
  }


def measure_training(root: str, steps: int) -> dict:
  from trainer import train
  from trainer.configs import tiny
  from trainer.data import synthetic

  train_dir = os.path.join(root, "tiny_train")
  synthetic.write_synthetic_build(train_dir, num_clips=64, seconds=2.0)
  config = tiny.get_config()
  config.data.train_dir = train_dir
  config.total_steps = steps
  config.log_every_steps = 10
  config.checkpoint_every_steps = steps  # one save, at the end
  result = train.train_and_evaluate(config, os.path.join(root, "tiny_run"))
  after_compile = [metrics for step, metrics in result["history"] if step > 10]
  return {
      "tiny_train_examples_per_s": float(np.mean([m["examples_per_s"] for m in after_compile])),
      "tiny_train_input_wait_fraction": float(np.mean([m["input_wait_fraction"] for m in after_compile])),
      "tiny_batch_size": config.batch_size,
  }


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clips", type=int, default=24, help="10 s clips in the paper-like build")
  parser.add_argument("--examples", type=int, default=96, help="examples per pipeline measurement")
  parser.add_argument("--train_steps", type=int, default=60, help="tiny-config training steps (0: skip)")
  parser.add_argument("--json", help="also write the figures to this JSON file")
  args = parser.parse_args(argv)

  root = tempfile.mkdtemp(prefix="mbt_bench_")
  try:
    figures = measure_pipeline(root, args.clips, args.examples)
    if args.train_steps:
      figures.update(measure_training(root, args.train_steps))
  finally:
    shutil.rmtree(root, ignore_errors=True)
  floor = figures["jpeg_decode_floor_examples_per_s_per_core"]
  print("\ninput pipeline (paper setting: 8 frames of 224 from 256p JPEGs, 800x128 log-mel), one core:")
  print(f"  plain JPEG decoding of the same frames (the floor) : {floor:.1f} ex/s")
  for key, label in (("pipeline", "preprocessing of records in memory"),
                     ("read_default", "ArrayRecord read + preprocessing (default)"),
                     ("read_verified", "the same, every read verified by the library"),
                     ("proposal", "layout proposal: verified reads of used records")):
    rate = figures[f"{key}_examples_per_s_per_core"]
    print(f"  {label:49s}: {rate:.1f} ex/s = {rate / floor:.2f} of the floor")
  print(f"  bytes per example: record {figures['record_mbytes']:.2f} MB, read (pages touched) "
        f"{figures['bytes_read_per_example_mbytes']:.2f} MB, used {figures['bytes_used_per_example_mbytes']:.2f} MB")
  print(f"  grain, {figures['cores']} cores{'':34s}: {figures['grain_examples_per_s_all_cores']:.1f} ex/s")
  print(f"  tf.data, {figures['cores']} cores{'':32s}: {figures['tfdata_examples_per_s_all_cores']:.1f} ex/s")
  if "tiny_train_examples_per_s" in figures:
    print("training, tiny config on CPU:")
    print(f"  examples/s (after compilation)         : {figures['tiny_train_examples_per_s']:.1f}")
    print(f"  share of step time waiting for input   : {figures['tiny_train_input_wait_fraction']:.0%}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(figures, f, indent=1)


if __name__ == "__main__":
  main()
