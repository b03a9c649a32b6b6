"""A whole local build against the media core alone: clips per second per core, overhead, peak memory.

Generates one source clip (default 12 s, 640x360, 30 fps, h264/aac mp4),
serves it on 127.0.0.1 under N YouTube-like ids (so no network), and runs
``python -m pipelines.build_vggsound`` over those N clips of 10 s as a user
would: the default DirectRunner, one worker process per core. Measured:

* the build: wall time, CPU time of the launcher, its Beam workers and the
  ffmpeg processes yt-dlp starts (all descendants), clips per second per
  core, and the peak resident memory of the launcher and of each worker;
* the media core on the same clips (the sections the build downloaded):
  shared.media.decode, the log-mel and shared.records.encode per clip, in a
  fresh process after a warm-up clip, which is the floor a build's CPU per
  clip can approach;
* a second, smaller build (N/4 clips by default): the difference between
  the two gives the CPU a build spends per additional clip, without the
  fixed costs (interpreter and Beam start-up, worker processes) that a
  small benchmark would otherwise spread over few clips.

The overhead ratio is the build's CPU per additional clip over the media
core's CPU per clip (goal <= 1.3x); what it adds is the download (yt-dlp,
ffmpeg's section copy, the downloader's verifying decode), Beam and the
shard writing.

    python benchmarks/pipeline_build.py --help
    python benchmarks/pipeline_build.py --clips 24
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
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

GOAL_OVERHEAD_RATIO = 1.3
CLIP_SECONDS = 10  # VGGSound's clips
CLIP_START = 1


# ---------------------------------------------------------------------------
# Watching a process tree through /proc (Linux).
# ---------------------------------------------------------------------------
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children_of() -> dict[int, list[int]]:
  children: dict[int, list[int]] = {}
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
      continue
    children.setdefault(int(fields[1]), []).append(int(entry))
  return children


def _descendants(root: int) -> list[int]:
  children, found, stack = _children_of(), [], [root]
  while stack:
    pid = stack.pop()
    found.append(pid)
    stack.extend(children.get(pid, []))
  return found


def _process_sample(pid: int):
  """(cpu seconds, peak RSS MB, command line) of a live process, or None."""
  try:
    with open(f"/proc/{pid}/stat") as stat:
      fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
    peak = 0.0
    with open(f"/proc/{pid}/status") as status:
      for line in status:
        if line.startswith("VmHWM:"):
          peak = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
      command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    return cpu, peak, command
  except (OSError, IndexError, ValueError):
    return None


class TreeWatcher:
  """Samples every process under a root: peak memory (VmHWM) and CPU, per process, until stopped."""

  def __init__(self, root: int, interval_s: float = 0.1):
    self.root = root
    self.processes: dict[int, dict] = {}
    self._interval_s = interval_s
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc_info):
    self._stop.set()
    self._thread.join()

  def _run(self):
    while not self._stop.is_set():
      for pid in _descendants(self.root):
        sample = _process_sample(pid)
        if sample is None:
          continue
        cpu, peak, command = sample
        seen = self.processes.setdefault(pid, {"cpu_s": 0.0, "peak_mb": 0.0, "command": command})
        seen["cpu_s"] = max(seen["cpu_s"], cpu)
        seen["peak_mb"] = max(seen["peak_mb"], peak)
      self._stop.wait(self._interval_s)

  def kind(self, pid: int) -> str:
    command = self.processes[pid]["command"]
    if pid == self.root:
      return "launcher"
    if command.startswith(("/bin/sh ", "sh ")):
      return "shell"  # Beam starts each worker through `sh -c`
    if "sdk_worker_main" in command or "apache_beam.runners.worker" in command:
      return "worker"
    return "ffmpeg" if "ffmpeg" in command else "other"


# ---------------------------------------------------------------------------
# The media core on the downloaded sections: runs in a fresh process.
# ---------------------------------------------------------------------------
def media_core_worker(build_dir: str) -> None:
  """Decode + log-mel + encode of every clip the build downloaded; prints one JSON line."""
  import numpy as np  # noqa: F401  (imports before the clock starts)

  from pipelines.download.ledger import read_ledger
  from shared import records
  from shared.media import decode, logmel

  decoder = decode.ClipDecoder(decode.DecodeOptions())
  ledger = read_ledger(os.path.join(build_dir, "ledger"))
  clips = []
  for record in sorted(ledger.records.values(), key=lambda r: r.clip_id):
    if record.status != "ok":
      continue
    path = os.path.join(build_dir, "media", record.clip_id + ".mp4")
    clips.append((record.clip_id, path, record.start_s, record.end_s))

  def one_clip(clip_id, path, start, end):
    decoded = decoder.decode(path, start, end, clock_origin_s=0.0)  # sections keep the source's clock
    melspec = logmel.log_mel(decoded.audio)
    return records.encode(records.ClipRecord(
        clip_id=clip_id, dataset="bench", source_id=clip_id, start_s=start, end_s=end,
        jpeg_frames=decoded.jpeg_frames, frame_width=decoded.frame_width, frame_height=decoded.frame_height,
        melspec=melspec, num_audio_samples=int(decoded.audio.shape[0]), label_indices=[0], label_names=["bench"],
        has_audio=decoded.has_audio, decoded_duration_s=decoded.decoded_duration_s, source_fps=decoded.source_fps,
        source_width=decoded.source_width, source_height=decoded.source_height))

  one_clip(*clips[0])  # warm-up: first-use costs are per process, not per clip
  cpu_per_clip = []
  for clip in clips:
    started = time.process_time()
    one_clip(*clip)
    cpu_per_clip.append(time.process_time() - started)
  with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
  print(json.dumps({"clips": len(clips), "cpu_s_per_clip": statistics.median(cpu_per_clip),
                    "cpu_s_total": sum(cpu_per_clip), "peak_rss_mb": peak}))


# ---------------------------------------------------------------------------
# Driver.
# ---------------------------------------------------------------------------
def _youtube_id(prefix: str, number: int) -> str:
  return f"{prefix}{number:06d}".ljust(11, "x")[:11]


def run_build(work: str, name: str, ytids: list[str], url_template: str, workers: int) -> dict:
  """One build in a subprocess; returns its wall time, CPU time and memory per process kind."""
  file_list = os.path.join(work, f"{name}.csv")
  with open(file_list, "w") as f:
    f.writelines(f"{ytid}_{CLIP_START:06d}.mp4,bench\n" for ytid in ytids)
  output_dir = os.path.join(work, name)
  command = [sys.executable, "-m", "pipelines.build_vggsound", "--file_list", file_list, "--output_dir", output_dir,
             "--url_template", url_template, "--progress_interval=0", f"--direct_num_workers={workers}"]
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  started = time.perf_counter()
  with tempfile.TemporaryFile() as log:
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    with TreeWatcher(process.pid) as watcher:
      returncode = process.wait()
    wall = time.perf_counter() - started
    if returncode != 0:
      log.seek(0)
      raise RuntimeError(f"build {name} failed ({returncode}):\n{log.read().decode(errors='replace')[-3000:]}")
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  from shared.manifest import read_manifest  # pylint: disable=import-outside-toplevel

  counts = read_manifest(output_dir).counts
  if counts.written != len(ytids):
    raise RuntimeError(f"build {name} wrote {counts.written} of {len(ytids)} clips: {counts}")
  # Waited-for descendants report their CPU to the launcher's rusage; processes
  # that exit unwaited do not, and the /proc samples catch those.
  rusage_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  sampled_cpu = sum(p["cpu_s"] for p in watcher.processes.values())
  peaks, cpu_by_kind = {}, {}
  for pid, seen in watcher.processes.items():
    kind = watcher.kind(pid)
    peaks.setdefault(kind, []).append(seen["peak_mb"])
    cpu_by_kind[kind] = cpu_by_kind.get(kind, 0.0) + seen["cpu_s"]
  return {"clips": len(ytids), "wall_s": wall, "cpu_s": max(rusage_cpu, sampled_cpu), "output_dir": output_dir,
          "cpu_s_by_process": cpu_by_kind, "launcher_peak_mb": max(peaks.get("launcher", [0.0])),
          "worker_peaks_mb": sorted(peaks.get("worker", [])), "ffmpeg_peak_mb": max(peaks.get("ffmpeg", [0.0]))}


def media_core(build_dir: str) -> dict:
  done = subprocess.run([sys.executable, os.path.abspath(__file__), "--_media_core", build_dir], cwd=REPO_ROOT,
                        capture_output=True, text=True, check=False)
  if done.returncode != 0:
    raise RuntimeError(f"media core worker failed: {done.stderr[-3000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python benchmarks/pipeline_build.py",
      description="Clips per second per core of a whole local build (build_vggsound on the default "
      "DirectRunner, media served from 127.0.0.1) next to the media core's cost per clip on the same clips; "
      "the overhead ratio and the peak memory per worker.")
  parser.add_argument("--clips", type=int, default=24, help="clips in the main build (default 24)")
  parser.add_argument("--small_clips", type=int, default=None,
                      help="clips in the second build that removes fixed costs (default clips/4; 0: skip it)")
  parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                      help="Beam worker processes (default: every core)")
  parser.add_argument("--width", type=int, default=640)
  parser.add_argument("--height", type=int, default=360)
  parser.add_argument("--fps", type=float, default=30.0)
  parser.add_argument("--content", choices=("clock", "textured"), default="clock",
                      help="clock: the generator's flat frame-counter blocks (cheap to decode); textured: a panning "
                      "noise texture that decodes like camera footage (benchmarks/media_core.py's)")
  parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
  parser.add_argument("--_media_core", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args._media_core:
    media_core_worker(args._media_core)
    return 0
  small = args.clips // 4 if args.small_clips is None else args.small_clips
  if args.clips < 2 or not 0 <= small < args.clips:
    parser.error("need --clips >= 2 and 0 <= --small_clips < --clips")

  from shared.media import generator
  from testsupport.media_server import MediaServer

  with tempfile.TemporaryDirectory(prefix="pipeline-build-bench-") as work:
    media_dir = os.path.join(work, "served")
    os.makedirs(media_dir)
    paint = None
    if args.content == "textured":
      sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
      from media_core import textured_painter  # pylint: disable=import-outside-toplevel

      paint = textured_painter(args.width, args.height)
    spec = generator.ClipSpec(duration_s=CLIP_START + CLIP_SECONDS + 1.0, width=args.width, height=args.height,
                              fps=args.fps)
    generator.write_clip(os.path.join(media_dir, "source.mp4"), spec, paint_frame=paint)
    with MediaServer(media_dir) as server:
      builds = {"main": [_youtube_id("main", i) for i in range(args.clips)],
                "small": [_youtube_id("small", i) for i in range(small)]}
      for ytid in builds["main"] + builds["small"]:
        server.alias(f"{ytid}.mp4", "source.mp4")
      url_template = server.url_template("{ytid}.mp4")
      results = {"main": run_build(work, "main", builds["main"], url_template, args.workers)}
      if small:
        results["small"] = run_build(work, "small", builds["small"], url_template, args.workers)
    core = media_core(results["main"]["output_dir"])

  main_build = results["main"]
  cores = min(args.workers, os.cpu_count() or 1)
  per_clip_total = main_build["cpu_s"] / main_build["clips"]
  if small:
    marginal = (main_build["cpu_s"] - results["small"]["cpu_s"]) / (main_build["clips"] - small)
  else:
    marginal = per_clip_total
  ratio = marginal / core["cpu_s_per_clip"]

  source = f"{CLIP_SECONDS} s clips of a {args.width}x{args.height} {args.fps:g} fps h264/aac mp4 ({args.content})"
  print(f"pipeline build benchmark: {source}, served on 127.0.0.1; DirectRunner, {args.workers} worker processes "
        f"on {os.cpu_count()} cores")
  header = f"{'':<34}{'clips':>6}{'wall s':>9}{'CPU s':>9}{'CPU s/clip':>12}{'clips/s/core':>14}{'peak MB':>22}"
  print(header)
  print("-" * len(header))
  for name, result in results.items():
    workers = "/".join(f"{mb:.0f}" for mb in result["worker_peaks_mb"]) or "-"
    print(f"{'build, ' + name:<34}{result['clips']:>6}{result['wall_s']:>9.1f}{result['cpu_s']:>9.1f}"
          f"{result['cpu_s'] / result['clips']:>12.2f}{result['clips'] / result['wall_s'] / cores:>14.3f}"
          f"{'launcher ' + format(result['launcher_peak_mb'], '.0f'):>22}")
    print(f"{'':<34}{'':>6}{'':>9}{'':>9}{'':>12}{'':>14}{'workers ' + workers:>22}")
    split = ", ".join(f"{kind} {cpu:.1f}" for kind, cpu in sorted(result["cpu_s_by_process"].items()) if cpu >= 0.05)
    print(f"{'':<4}own CPU s by process (sampled; short-lived ffmpeg runs not resolved): {split}")
  if small:
    print(f"{'build, per additional clip':<34}{'':>6}{'':>9}{'':>9}{marginal:>12.2f}{1 / marginal:>14.3f}")
  print(f"{'media core (decode+logmel+encode)':<34}{core['clips']:>6}{'':>9}{core['cpu_s_total']:>9.1f}"
        f"{core['cpu_s_per_clip']:>12.2f}{1 / core['cpu_s_per_clip']:>14.3f}"
        f"{format(core['peak_rss_mb'], '.0f'):>22}")
  print()
  verdict = "meets" if ratio <= GOAL_OVERHEAD_RATIO else "misses"
  print(f"overhead ratio (build CPU per {'additional ' if small else ''}clip / media core CPU per clip): "
        f"{ratio:.2f}x ({verdict} the goal <= {GOAL_OVERHEAD_RATIO}x); "
        f"with fixed costs over {main_build['clips']} clips: {per_clip_total / core['cpu_s_per_clip']:.2f}x")
  print(f"peak memory per worker: {max(main_build['worker_peaks_mb'] or [0]):.0f} MB "
        f"(launcher {main_build['launcher_peak_mb']:.0f} MB, ffmpeg {main_build['ffmpeg_peak_mb']:.0f} MB)")
  if args.json:
    print(json.dumps({"builds": {k: {key: v for key, v in r.items() if key != "output_dir"}
                                 for k, r in results.items()},
                      "media_core": core, "cpu_s_per_additional_clip": marginal, "overhead_ratio": ratio}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
