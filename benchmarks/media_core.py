"""CPU time and peak memory of the media core against the FFmpeg CLI floor.

Generates one synthetic clip (default: 10 s, 640x360, 30 fps, h264/aac mp4),
then measures, each a few times in fresh processes, and prints medians:

* floor: the FFmpeg CLI alone decoding the clip to raw 25 fps frames
  (``-vf fps=25 -f rawvideo``) and 16 kHz mono float audio, both to /dev/null;
  the least any decoder of this clip can spend;
* media core, per clip end to end, in a worker process after a warm-up clip
  (as a pipeline worker runs): decode_clip (250 frames resized and
  JPEG-encoded, audio resampled), log-mel, and serialize (shared.records.encode,
  which packs the log-mel into its one-second steps).

CPU time is user + system of the measured process and all its threads (and
children, for the floor); peak memory is the process's maximum resident set.
The worker's imports are outside the CPU figures but inside its peak memory,
so the table also shows the worker's memory right after its imports.

Memory against the span's length: the media core also runs, in fresh
processes, on the first --baseline_span seconds of the same clip, and the
ratio of the two peaks shows what a longer span costs. A record holds every
JPEG, so the peak grows with the span by about twice the record's size (the
JPEGs and the serialized record, never the raw frames); EPIC-KITCHENS' longest
actions, about 150 s at 50-60 fps, are the case to measure:

    python benchmarks/media_core.py --duration 150 --fps 60 --content textured --repeats 1

    python benchmarks/media_core.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

GOAL_CPU_RATIO = 2.0
GOAL_PEAK_MB = 500.0  # a 10 s clip
GOAL_LONG_SPAN_PEAK_MB = 1000.0  # any span up to the builds' --max_span_seconds (150 s)


def _rusage_cpu(usage: resource.struct_rusage) -> float:
  return usage.ru_utime + usage.ru_stime


def _run_child(command: list[str]) -> tuple[float, float, float, str]:
  """Runs a command; returns (cpu_s, wall_s, peak_rss_mb, stdout) of that child alone."""
  with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=stderr)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix all children).
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stdout.seek(0)
    stderr.seek(0)
    stdout, stderr = stdout.read(), stderr.read()
  if process.returncode != 0:
    raise RuntimeError(f"{command[0]} failed ({process.returncode}): {stderr.decode(errors='replace')[-2000:]}")
  return _rusage_cpu(usage), wall, usage.ru_maxrss / 1024, stdout.decode()


def floor_command(clip_path: str, ffmpeg_exe: str) -> list[str]:
  """The FFmpeg CLI decoding the clip to 25 fps raw frames and 16 kHz mono audio."""
  from shared import contract

  return [
      ffmpeg_exe, "-nostdin", "-v", "error", "-i", clip_path,
      "-map", "0:v:0", "-vf", f"fps={contract.VIDEO_FPS}", "-f", "rawvideo", "-y", os.devnull,
      "-map", "0:a:0", "-ar", str(contract.AUDIO_SAMPLE_RATE), "-ac", str(contract.AUDIO_CHANNELS),
      "-f", "f32le", "-y", os.devnull,
  ]


def textured_painter(width: int, height: int):
  """A frame painter: smooth noise with fine grain, panning 3 px per frame.

  The generator's clock frames are flat blocks that decode almost for free,
  which makes the floor unrealistically low; this texture costs the decoder
  what real footage costs.
  """
  import numpy as np

  rng = np.random.default_rng(0)
  coarse = rng.integers(0, 256, size=(height // 8 + 2, (width + 3 * 1000) // 8 + 2, 3)).astype(np.float32)
  smooth = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
  grain = rng.normal(0, 6, size=smooth.shape).astype(np.float32)
  texture = np.clip(smooth + grain, 0, 255).astype(np.uint8)

  def paint(index: int, t: float, frame_width: int, frame_height: int):
    del t
    offset = (3 * index) % (texture.shape[1] - frame_width)
    return texture[:frame_height, offset:offset + frame_width]

  return paint


# ---------------------------------------------------------------------------
# Worker: runs inside a fresh process, prints one JSON line.
# ---------------------------------------------------------------------------
def _serializer(choice: str):
  """Returns (name, fn(decoded, melspec) -> bytes)."""
  if choice == "none":
    return "none", lambda decoded, melspec: b""
  from shared import records

  def encode(decoded, melspec):
    record = records.ClipRecord(
        clip_id="bench", dataset="bench", source_id="bench", start_s=decoded.start_s, end_s=decoded.end_s,
        jpeg_frames=decoded.jpeg_frames, frame_width=decoded.frame_width, frame_height=decoded.frame_height,
        melspec=melspec, num_audio_samples=int(decoded.audio.shape[0]), label_indices=[0], label_names=["bench"],
        has_audio=decoded.has_audio, decoded_duration_s=decoded.decoded_duration_s, source_fps=decoded.source_fps,
        source_width=decoded.source_width, source_height=decoded.source_height)
    return records.encode(record)

  return "shared.records.encode", encode


def _peak_rss_mb() -> float:
  """This process's own peak resident memory.

  ru_maxrss would also count the parent's memory at fork (Linux carries the
  high-water mark across exec); VmHWM counts only this program's.
  """
  try:
    with open("/proc/self/status") as status:
      for line in status:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_now() -> float:
  return _rusage_cpu(resource.getrusage(resource.RUSAGE_SELF))


def worker(clip_path: str, start_s: float, end_s: float, decoder_threads: int, serializer: str) -> None:
  """One clip end to end after a warm-up clip; prints a JSON line of timings."""
  import numpy as np  # noqa: F401  (imported here so the import is not timed)

  from shared.media import decode, logmel

  serializer_name, serialize = _serializer(serializer)
  options = decode.DecodeOptions(decoder_threads=decoder_threads)
  decoder = decode.ClipDecoder(options)
  rss_after_imports = _peak_rss_mb()

  def one_clip():
    marks = [(_cpu_now(), time.perf_counter())]
    decoded = decoder.decode(clip_path, start_s, end_s)
    marks.append((_cpu_now(), time.perf_counter()))
    melspec = logmel.log_mel(decoded.audio)
    marks.append((_cpu_now(), time.perf_counter()))
    serialized = serialize(decoded, melspec)
    marks.append((_cpu_now(), time.perf_counter()))
    stages = ("decode", "logmel", "serialize")
    result = {f"{name}_cpu_s": marks[i + 1][0] - marks[i][0] for i, name in enumerate(stages)}
    result.update({f"{name}_wall_s": marks[i + 1][1] - marks[i][1] for i, name in enumerate(stages)})
    result["total_cpu_s"] = marks[-1][0] - marks[0][0]
    result["total_wall_s"] = marks[-1][1] - marks[0][1]
    result["frames"] = len(decoded.jpeg_frames)
    # What holding the span's decoded frames (YUV 4:2:0 at the source size) would take.
    result["raw_frames_mb"] = len(decoded.jpeg_frames) * decoded.source_width * decoded.source_height * 1.5 / 1e6
    result["frame_size"] = f"{decoded.frame_width}x{decoded.frame_height}"
    result["record_bytes"] = len(serialized)
    return result

  one_clip()  # warm-up: first-use costs (codec tables, FFT plans) are per process, not per clip
  result = one_clip()
  result["peak_rss_mb"] = _peak_rss_mb()
  result["rss_after_imports_mb"] = rss_after_imports
  result["serializer"] = serializer_name
  print(json.dumps(result))


# ---------------------------------------------------------------------------
# Driver.
# ---------------------------------------------------------------------------
def _median(runs: list[dict], key: str) -> float:
  return statistics.median(run[key] for run in runs)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python benchmarks/media_core.py",
      description="CPU time and peak memory of the media core (decode, resize + JPEG, resample, log-mel, "
      "serialize) per clip, against the FFmpeg CLI decoding the same clip alone.",
  )
  parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement; medians are reported")
  parser.add_argument("--duration", type=float, default=10.0, help="clip length, seconds")
  parser.add_argument("--width", type=int, default=640)
  parser.add_argument("--height", type=int, default=360)
  parser.add_argument("--fps", type=float, default=30.0)
  parser.add_argument("--clip", help="benchmark this media file instead of generating one (span: 0..--duration)")
  parser.add_argument("--decoder_threads", type=int, default=1, help="DecodeOptions.decoder_threads (0: FFmpeg auto)")
  parser.add_argument("--serializer", choices=("records", "none"), default="records",
                      help="records: shared.records.encode; none: leave serialization out")
  parser.add_argument("--content", choices=("clock", "textured"), default="clock",
                      help="clock: the generator's frame-counter blocks (flat, very cheap to decode); textured: a "
                      "panning noise texture, whose decode costs what camera footage costs")
  parser.add_argument("--baseline_span", type=float, default=10.0,
                      help="also measure the media core's peak memory on the first this many seconds of the clip "
                      "(0: not); the ratio shows what the longer span costs")
  parser.add_argument("--json", action="store_true", help="also print the medians as one JSON line")
  parser.add_argument("--_worker", nargs=3, metavar=("CLIP", "START", "END"), help=argparse.SUPPRESS)
  parser.add_argument("--_generate", metavar="PATH", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)

  if args._worker:
    clip, start, end = args._worker
    worker(clip, float(start), float(end), args.decoder_threads, args.serializer)
    return 0
  if args._generate:
    from shared.media import generator

    generator.write_clip(args._generate, generator.ClipSpec(
        duration_s=args.duration, width=args.width, height=args.height, fps=args.fps, container="mp4"),
        paint_frame=textured_painter(args.width, args.height) if args.content == "textured" else None)
    return 0

  # The driver stays small (stdlib only; generation runs in its own process):
  # a child's peak-memory figure starts from its parent's memory at fork.
  with tempfile.TemporaryDirectory(prefix="media_core_bench_") as workdir:
    clip_path = args.clip
    if clip_path is None:
      clip_path = os.path.join(workdir, "bench.mp4")
      subprocess.run([sys.executable, os.path.abspath(__file__), "--duration", str(args.duration), "--width",
                      str(args.width), "--height", str(args.height), "--fps", str(args.fps), "--content",
                      args.content, "--_generate", clip_path], check=True)
      description = (f"{args.duration:g} s {args.width}x{args.height} {args.fps:g} fps h264/aac mp4 "
                     f"(generated, {args.content} frames)")
    else:
      description = clip_path

    # imageio_ffmpeg only locates its binary; asked in a child to keep the driver small.
    ffmpeg_exe = subprocess.run([sys.executable, "-c", "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"],
                                check=True, capture_output=True, text=True).stdout.strip()
    floor_runs, core_runs, baseline_runs = [], [], []

    def worker_command(end_s: float) -> list[str]:
      return [sys.executable, os.path.abspath(__file__), "--decoder_threads", str(args.decoder_threads),
              "--serializer", args.serializer, "--_worker", clip_path, "0", str(end_s)]

    baseline = 0 < args.baseline_span < args.duration
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all alike
      cpu, wall, peak, _ = _run_child(floor_command(clip_path, ffmpeg_exe))
      floor_runs.append({"cpu_s": cpu, "wall_s": wall, "peak_rss_mb": peak})
      _, _, _, stdout = _run_child(worker_command(args.duration))
      core_runs.append(json.loads(stdout.strip().splitlines()[-1]))
      if baseline:
        _, _, _, stdout = _run_child(worker_command(args.baseline_span))
        baseline_runs.append(json.loads(stdout.strip().splitlines()[-1]))

  floor_cpu = _median(floor_runs, "cpu_s")
  core_cpu = _median(core_runs, "total_cpu_s")
  core_peak = max(run["peak_rss_mb"] for run in core_runs)
  ratio = core_cpu / floor_cpu
  rows = [
      ("floor: ffmpeg CLI decode -> 25 fps raw + 16 kHz f32", floor_cpu, _median(floor_runs, "wall_s"),
       max(r["peak_rss_mb"] for r in floor_runs)),
      ("core: decode (frames resized + JPEG, audio resampled)", _median(core_runs, "decode_cpu_s"),
       _median(core_runs, "decode_wall_s"), None),
      ("core: log-mel", _median(core_runs, "logmel_cpu_s"), _median(core_runs, "logmel_wall_s"), None),
      (f"core: serialize ({core_runs[0]['serializer']})", _median(core_runs, "serialize_cpu_s"),
       _median(core_runs, "serialize_wall_s"), None),
      ("core: total per clip", core_cpu, _median(core_runs, "total_wall_s"), core_peak),
  ]
  print(f"clip: {description}; {core_runs[0]['frames']} frames at {core_runs[0]['frame_size']}, "
        f"record {core_runs[0]['record_bytes'] / 1e6:.2f} MB; medians of {args.repeats} runs; "
        f"{os.cpu_count()} CPUs, decoder_threads={args.decoder_threads}")
  print(f"{'measurement':56s} {'CPU s':>8s} {'wall s':>8s} {'peak MB':>8s}")
  for name, cpu, wall, peak in rows:
    print(f"{name:56s} {cpu:8.3f} {wall:8.3f} {'' if peak is None else f'{peak:8.0f}':>8s}")
  imports_mb = max(run["rss_after_imports_mb"] for run in core_runs)
  print(f"{'core worker memory right after its imports':56s} {'':8s} {'':8s} {imports_mb:8.0f}")
  cpu_verdict = "met" if ratio <= GOAL_CPU_RATIO else "NOT met"
  goal_peak = GOAL_PEAK_MB if args.duration <= 10 else GOAL_LONG_SPAN_PEAK_MB
  print(f"CPU ratio core / floor: {ratio:.2f} (goal <= {GOAL_CPU_RATIO:.1f}: {cpu_verdict}); "
        f"core peak memory {core_peak:.0f} MB, {core_peak - imports_mb:.0f} MB above its imports "
        f"(goal <= {goal_peak:.0f} MB: {'met' if core_peak <= goal_peak else 'NOT met'})")
  summary = {"floor_cpu_s": floor_cpu, "core_cpu_s": core_cpu, "ratio": ratio, "core_peak_rss_mb": core_peak,
             "core_rss_after_imports_mb": imports_mb, "record_mb": core_runs[0]["record_bytes"] / 1e6}
  if baseline_runs:
    baseline_peak = max(run["peak_rss_mb"] for run in baseline_runs)
    record_mb, baseline_record_mb = core_runs[0]["record_bytes"] / 1e6, baseline_runs[0]["record_bytes"] / 1e6
    print(f"peak memory, span {args.duration:g} s / {args.baseline_span:g} s of the same clip: {core_peak:.0f} / "
          f"{baseline_peak:.0f} MB = {core_peak / baseline_peak:.2f}x for {args.duration / args.baseline_span:.0f}x "
          f"the span; above imports {core_peak - imports_mb:.0f} / {baseline_peak - imports_mb:.0f} MB, records "
          f"{record_mb:.1f} / {baseline_record_mb:.1f} MB (raw frames of the whole span would be "
          f"{core_runs[0]['raw_frames_mb']:.0f} MB)")
    summary.update(baseline_span_s=args.baseline_span, baseline_peak_rss_mb=baseline_peak,
                   peak_ratio=core_peak / baseline_peak)
  if args.json:
    print(json.dumps(summary))
  return 0


if __name__ == "__main__":
  sys.exit(main())
