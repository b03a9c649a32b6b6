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
core's CPU per clip (goal <= 1.2x); what it adds is the download (yt-dlp,
ffmpeg's section copy, the downloader's verification), Beam, staging and the
shard writing. On a shared machine one measurement of it moves by 0.1x and
more (the media core alone, measured at another moment than the builds, most
of all): --repeats measures again and reports the median and the spread.

--profile times the stages of the build's workers (benchmarks/stage_profile.py:
the CPU time of each call, in the workers' own threads, plus what /proc says
of the ffmpeg processes, the rest of each worker and the launcher) and prints
the CPU per additional clip of each stage: where the overhead goes.

    python benchmarks/pipeline_build.py --help
    python benchmarks/pipeline_build.py --clips 24
    python benchmarks/pipeline_build.py --content textured --profile --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import stage_profile  # noqa: E402  (benchmarks/, beside this file)

GOAL_OVERHEAD_RATIO = 1.2
UNRESOLVED_STAGE = "not resolved (the build's CPU less the above)"
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
  """(cpu seconds, CPU seconds of waited-for children, peak RSS MB, command line) of a live process, or None."""
  try:
    with open(f"/proc/{pid}/stat") as stat:
      fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
    children_cpu = (int(fields[13]) + int(fields[14])) / _CLOCK_TICKS  # cutime + cstime
    peak = 0.0
    with open(f"/proc/{pid}/status") as status:
      for line in status:
        if line.startswith("VmHWM:"):
          peak = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
      command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    return cpu, children_cpu, peak, command
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
        cpu, children_cpu, peak, command = sample
        seen = self.processes.setdefault(pid, {"cpu_s": 0.0, "children_cpu_s": 0.0, "peak_mb": 0.0,
                                               "command": command})
        seen["cpu_s"] = max(seen["cpu_s"], cpu)
        seen["children_cpu_s"] = max(seen["children_cpu_s"], children_cpu)
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


def run_build(work: str, name: str, ytids: list[str], url_template: str, workers: int, profile: bool = False) -> dict:
  """One build in a subprocess; returns its wall time, CPU time and memory per process kind.

  With `profile`, its workers time their stages (benchmarks/stage_profile.py)
  and the result holds the CPU seconds per stage.
  """
  file_list = os.path.join(work, f"{name}.csv")
  with open(file_list, "w") as f:
    f.writelines(f"{ytid}_{CLIP_START:06d}.mp4,bench\n" for ytid in ytids)
  output_dir = os.path.join(work, name)
  command = [sys.executable, "-m", "pipelines.build_vggsound", "--file_list", file_list, "--output_dir", output_dir,
             "--url_template", url_template, "--progress_interval=0", f"--direct_num_workers={workers}"]
  environment = dict(os.environ)
  stage_dir = os.path.join(work, f"{name}-stages")
  if profile:
    os.makedirs(stage_dir)
    stage_profile.write_sitecustomize(stage_dir)
    environment["PYTHONPATH"] = os.pathsep.join(
        [stage_dir, REPO_ROOT] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
    environment[stage_profile.ENV_DIR] = stage_dir
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  started = time.perf_counter()
  with tempfile.TemporaryFile() as log:
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=environment)
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
  result = {"clips": len(ytids), "wall_s": wall, "cpu_s": max(rusage_cpu, sampled_cpu), "output_dir": output_dir,
            "cpu_s_by_process": cpu_by_kind, "launcher_peak_mb": max(peaks.get("launcher", [0.0])),
            "worker_peaks_mb": sorted(peaks.get("worker", [])), "ffmpeg_peak_mb": max(peaks.get("ffmpeg", [0.0]))}
  if profile:
    result["cpu_s_by_stage"] = stage_cpu(watcher, stage_profile.read_stage_cpu(stage_dir), result["cpu_s"])
  return result


def stage_cpu(watcher: TreeWatcher, timed: dict[int, dict[str, float]], build_cpu_s: float) -> dict[str, float]:
  """The build's CPU seconds by stage: the workers' timed stages, then what /proc says of the rest.

  The stages add up to the build's CPU: what no stage holds (processes not
  waited for, CPU after a process's last sample) is the last entry.
  """
  stages = {stage: 0.0 for stage, _, _ in stage_profile.TIMED}
  stages.update({stage_profile.CHILDREN_STAGE: 0.0, stage_profile.STARTUP_STAGE: 0.0,
                 stage_profile.UNTIMED_STAGE: 0.0, stage_profile.LAUNCHER_STAGE: 0.0})
  for pid, seen in watcher.processes.items():
    kind = watcher.kind(pid)
    if kind == "launcher":
      stages[stage_profile.LAUNCHER_STAGE] += seen["cpu_s"]
    elif kind == "worker":
      own = timed.get(pid, {})
      for stage, cpu in own.items():
        stages[stage] += cpu
      stages[stage_profile.CHILDREN_STAGE] += seen["children_cpu_s"]  # the ffmpeg runs it waited for
      stages[stage_profile.UNTIMED_STAGE] += seen["cpu_s"] - sum(own.values())
  stages[UNRESOLVED_STAGE] = build_cpu_s - sum(stages.values())
  return stages


def media_core(build_dir: str) -> dict:
  done = subprocess.run([sys.executable, os.path.abspath(__file__), "--_media_core", build_dir], cwd=REPO_ROOT,
                        capture_output=True, text=True, check=False)
  if done.returncode != 0:
    raise RuntimeError(f"media core worker failed: {done.stderr[-3000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def stage_rows(results: dict, core_cpu_s_per_clip: float) -> list[tuple[str, float, float, float]]:
  """(stage, main CPU s, small CPU s, CPU s per additional clip) of one repeat's builds."""
  main_build, small = results["main"], results.get("small")
  added = main_build["clips"] - (small["clips"] if small else 0)
  rows = []
  for stage, cpu in main_build["cpu_s_by_stage"].items():
    small_cpu = small["cpu_s_by_stage"][stage] if small else 0.0
    rows.append((stage, cpu, small_cpu, (cpu - small_cpu) / added))
  return rows


def print_stage_table(repeats: list[dict]) -> None:
  """CPU by stage per additional clip (the median over repeats), and against the media core."""
  tables = [stage_rows(r["results"], r["core"]["cpu_s_per_clip"]) for r in repeats]
  core = statistics.median(r["core"]["cpu_s_per_clip"] for r in repeats)
  many = len(repeats) > 1
  print(f"CPU by stage{' (medians of ' + str(len(repeats)) + ' repeats)' if many else ''}; per additional clip: "
        "(main - small) / the clips between them; x core: over the media core alone")
  header = f"{'stage':<60}{'main s':>8}{'small s':>8}{'per add. clip s':>16}{'x core':>8}"
  print(header)
  print("-" * len(header))
  for index, (stage, *_) in enumerate(tables[0]):
    main_cpu, small_cpu, per_clip = (statistics.median(t[index][column] for t in tables) for column in (1, 2, 3))
    print(f"{stage:<60}{main_cpu:>8.2f}{small_cpu:>8.2f}{per_clip:>16.3f}{per_clip / core:>8.2f}")
  build = statistics.median(r["marginal"] for r in repeats)
  in_build_core = statistics.median(r["core_in_build"] for r in repeats)
  print(f"{'the build (median of its repeats)':<60}{'':>8}{'':>8}{build:>16.3f}{build / core:>8.2f}")
  print(f"{'the media core in the build (decode, log-mel, serialize)':<60}{'':>8}{'':>8}{in_build_core:>16.3f}"
        f"{in_build_core / core:>8.2f}")
  print(f"{'the media core alone (one process, after a warm-up clip)':<60}{'':>8}{'':>8}{core:>16.3f}{1.0:>8.2f}")
  ratios = [r["marginal"] / r["core_in_build"] for r in repeats]
  print(f"the build over the media core as the build ran it (same processes, same time; steadier): "
        f"{_spread(ratios)}")


def _spread(values: list[float]) -> str:
  if len(values) == 1:
    return f"{values[0]:.2f}x"
  return f"median {statistics.median(values):.2f}x (min {min(values):.2f}x, max {max(values):.2f}x, {len(values)} repeats)"


def run_repeat(work: str, repeat: int, builds: dict, url_template: str, args) -> dict:
  """One measurement: the builds, then the media core on the main build's sections."""
  results = {}
  for name, ytids in builds.items():
    if ytids:
      results[name] = run_build(work, f"{name}{repeat}", ytids, url_template, args.workers, args.profile)
  core = media_core(results["main"]["output_dir"])
  main_build = results["main"]
  if "small" in results:
    marginal = (main_build["cpu_s"] - results["small"]["cpu_s"]) / (main_build["clips"] - results["small"]["clips"])
  else:
    marginal = main_build["cpu_s"] / main_build["clips"]
  repeat_result = {"results": results, "core": core, "marginal": marginal, "ratio": marginal / core["cpu_s_per_clip"]}
  if args.profile:
    repeat_result["core_in_build"] = sum(per_clip for stage, _, _, per_clip in stage_rows(results, 1.0)
                                         if stage in stage_profile.MEDIA_CORE_STAGES)
  return repeat_result


def print_repeat(repeat: dict, args) -> None:
  """The figures of one repeat: each build, the media core, the overhead ratio, memory."""
  results, core, marginal, ratio = repeat["results"], repeat["core"], repeat["marginal"], repeat["ratio"]
  main_build = results["main"]
  small = "small" in results
  cores = min(args.workers, os.cpu_count() or 1)
  per_clip_total = main_build["cpu_s"] / main_build["clips"]
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
  print(f"overhead ratio (build CPU per {'additional ' if small else ''}clip / media core CPU per clip): "
        f"{ratio:.2f}x; with fixed costs over {main_build['clips']} clips: "
        f"{per_clip_total / core['cpu_s_per_clip']:.2f}x")
  print(f"peak memory per worker: {max(main_build['worker_peaks_mb'] or [0]):.0f} MB "
        f"(launcher {main_build['launcher_peak_mb']:.0f} MB, ffmpeg {main_build['ffmpeg_peak_mb']:.0f} MB)")


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
  parser.add_argument("--repeats", type=int, default=1,
                      help="measure this many times (builds and media core each time) and report the median and "
                      "the spread of the ratio: on a shared machine one measurement moves by 0.1x and more")
  parser.add_argument("--profile", action="store_true",
                      help="also time the workers' stages (download, verification, features, staging, shards, "
                      "Beam; benchmarks/stage_profile.py) and print the CPU per additional clip of each")
  parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
  parser.add_argument("--_media_core", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args._media_core:
    media_core_worker(args._media_core)
    return 0
  small = args.clips // 4 if args.small_clips is None else args.small_clips
  if args.clips < 2 or not 0 <= small < args.clips or args.repeats < 1:
    parser.error("need --clips >= 2, 0 <= --small_clips < --clips and --repeats >= 1")

  from shared.media import generator
  from testsupport.media_server import MediaServer

  source = f"{CLIP_SECONDS} s clips of a {args.width}x{args.height} {args.fps:g} fps h264/aac mp4 ({args.content})"
  print(f"pipeline build benchmark: {source}, served on 127.0.0.1; DirectRunner, {args.workers} worker processes "
        f"on {os.cpu_count()} cores")
  repeats = []
  with tempfile.TemporaryDirectory(prefix="pipeline-build-bench-") as work:
    media_dir = os.path.join(work, "served")
    os.makedirs(media_dir)
    paint = None
    if args.content == "textured":
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
      for repeat in range(args.repeats):
        repeats.append(run_repeat(work, repeat, builds, server.url_template("{ytid}.mp4"), args))
        if args.repeats > 1:
          print(f"\nrepeat {repeat + 1} of {args.repeats}")
        print_repeat(repeats[-1], args)
        for result in repeats[-1]["results"].values():
          shutil.rmtree(result.pop("output_dir"), ignore_errors=True)

  ratios = [r["ratio"] for r in repeats]
  verdict = "meets" if statistics.median(ratios) <= GOAL_OVERHEAD_RATIO else "misses"
  print()
  print(f"overhead ratio (build CPU per {'additional ' if small else ''}clip / media core CPU per clip): "
        f"{_spread(ratios)} ({verdict} the goal <= {GOAL_OVERHEAD_RATIO}x)")
  if args.profile:
    print()
    print_stage_table(repeats)
  if args.json:
    print(json.dumps({"repeats": repeats, "overhead_ratios": ratios,
                      "overhead_ratio": statistics.median(ratios)}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
