"""Download throughput against the local media mirror, and what verification costs.

    python benchmarks/download_throughput.py --help
    python benchmarks/download_throughput.py --clips 16 --concurrency 1 4 --repeats 3

Generates one synthetic source (default 30 s of 640x360 at 25 fps with AAC
audio, like a YouTube 360p stream), serves it under many YouTube-like ids from
a MediaServer on 127.0.0.1, and downloads a 10 s span (plus the 1 s margins) of
each with the real ClipDownloader: yt-dlp, its ffmpeg section cut, the full
retry and classification path. For each concurrency it runs the same clips
twice in the same process:

* download alone: the verifier only reads the container's start time (no
  decoding), which the result needs anyway;
* download + verify: the real check_media, which decodes every frame and
  audio sample of the file.

and prints clips/s and MB/s per process, and their ratio. Numbers are for
loopback: they measure the per-clip cost on this side (yt-dlp's extraction,
ffmpeg's process start and cut, decoding), not the network.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time

import av

# Runnable as a script from anywhere in the checkout.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.download.downloader import ClipDownloader, DownloadConfig  # noqa: E402
from pipelines.download.results import DownloadRequest  # noqa: E402
from pipelines.download.verify import MediaCheck, check_media  # noqa: E402
from shared.media.generator import ClipSpec, write_clip  # noqa: E402
from testsupport.media_server import MediaServer  # noqa: E402


def probe_only(path: str, span_start_s: float, span_end_s: float, require_video: bool = True,
               require_audio: bool = False, max_missing_s: float = 0.5) -> MediaCheck:
  """The baseline 'verifier': opens the container for its start time and decodes nothing."""
  del span_start_s, span_end_s, require_video, require_audio, max_missing_s
  with av.open(path) as container:
    origin = (container.start_time or 0) / av.time_base
  return MediaCheck(origin_s=origin, video=None, audio=None, width=None, height=None, decode_errors=0)


class TimedVerifier:
  """Wraps a verifier and adds up the time spent in it (over all threads)."""

  def __init__(self, verifier):
    self._verifier = verifier
    self._lock = threading.Lock()
    self.seconds = 0.0
    self.calls = 0

  def __call__(self, *args, **kwargs) -> MediaCheck:
    started = time.perf_counter()
    try:
      return self._verifier(*args, **kwargs)
    finally:
      with self._lock:
        self.seconds += time.perf_counter() - started
        self.calls += 1


@dataclasses.dataclass
class Run:
  """One measured batch."""

  mode: str
  concurrency: int
  clips: int
  ok: int
  wall_s: float
  cpu_s: float
  num_bytes: int
  verify_s: float

  @property
  def clips_per_s(self) -> float:
    return self.ok / self.wall_s

  @property
  def megabytes_per_s(self) -> float:
    return self.num_bytes / 1e6 / self.wall_s


def run_batch(server: MediaServer, ytids: list[str], output_dir: str, concurrency: int, verify: bool,
              span_s: float, starts: list[float]) -> Run:
  timer = TimedVerifier(check_media if verify else probe_only)
  config = DownloadConfig(output_dir=output_dir, url_template=server.url_template("{ytid}.mp4"),
                          concurrency=concurrency, reuse_existing=False)
  downloader = ClipDownloader(config, verifier=timer)
  requests = [DownloadRequest(clip_id=f"c{index:04d}", source_id=ytid, start_s=starts[index % len(starts)],
                              end_s=starts[index % len(starts)] + span_s) for index, ytid in enumerate(ytids)]
  cpu_before = time.process_time()
  started = time.perf_counter()
  results = list(downloader.download_many(requests))
  wall = time.perf_counter() - started
  cpu = time.process_time() - cpu_before
  failures = [r for r in results if not r.ok]
  if failures:
    raise SystemExit(f"{len(failures)} downloads failed, e.g. {failures[0]}")
  for result in results:
    os.remove(result.path)
  return Run(mode="download + verify" if verify else "download alone", concurrency=concurrency, clips=len(results),
             ok=len(results), wall_s=wall, cpu_s=cpu, num_bytes=sum(r.num_bytes for r in results),
             verify_s=timer.seconds)


def format_table(runs: list[Run]) -> str:
  baseline = {run.concurrency: run for run in runs if run.mode == "download alone"}
  single = {run.mode: run for run in runs if run.concurrency == 1}
  header = ("mode", "conc.", "clips", "wall s", "clips/s", "MB/s", "vs alone", "vs conc. 1", "verify s/clip",
            "CPU s/clip")
  rows = [header]
  for run in runs:
    rows.append((
        run.mode, str(run.concurrency), str(run.ok), f"{run.wall_s:.2f}", f"{run.clips_per_s:.2f}",
        f"{run.megabytes_per_s:.2f}", f"{run.clips_per_s / baseline[run.concurrency].clips_per_s:.2f}x",
        f"{run.clips_per_s / single[run.mode].clips_per_s:.2f}x" if run.mode in single else "-",
        f"{run.verify_s / run.ok:.3f}", f"{run.cpu_s / run.ok:.3f}"))
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  lines = []
  for index, row in enumerate(rows):
    lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
    if index == 0:
      lines.append("  ".join("-" * width for width in widths))
  return "\n".join(lines)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      prog="python benchmarks/download_throughput.py",
      description="Clips/s and MB/s of the clip downloader against a local mirror, at several concurrencies, "
      "with and without decoding verification (same process, same clips).")
  parser.add_argument("--clips", type=int, default=16, help="clips per measured batch (default %(default)s)")
  parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4], help="concurrencies (default 1 4)")
  parser.add_argument("--source_duration", type=float, default=30.0, help="source length, seconds")
  parser.add_argument("--span", type=float, default=10.0, help="clip span, seconds (VGGSound: 10)")
  parser.add_argument("--width", type=int, default=640)
  parser.add_argument("--height", type=int, default=360)
  parser.add_argument("--repeats", type=int, default=1,
                      help="measure each configuration this many times, interleaved, and report the median run "
                      "(steadier on a shared machine)")
  args = parser.parse_args(argv)
  if args.span + 2 > args.source_duration:
    parser.error("--span plus the 1 s margins must fit in --source_duration")

  with tempfile.TemporaryDirectory(prefix="download-bench-") as workspace:
    media_dir = os.path.join(workspace, "media")
    started = time.perf_counter()
    write_clip(os.path.join(media_dir, "source.mp4"),
               ClipSpec(duration_s=args.source_duration, width=args.width, height=args.height, fps=25.0))
    source_bytes = os.path.getsize(os.path.join(media_dir, "source.mp4"))
    print(f"source: {args.source_duration:.0f} s {args.width}x{args.height} h264/aac, {source_bytes / 1e6:.2f} MB "
          f"(generated in {time.perf_counter() - started:.1f} s); {args.clips} clips of {args.span:.0f} s per batch; "
          f"{os.cpu_count()} CPUs", flush=True)
    # Spread the spans over the source so cuts land at different keyframe distances.
    last_start = args.source_duration - args.span - 1.0
    starts = [1.0 + (last_start - 1.0) * k / 3 for k in range(4)]
    with MediaServer(media_dir) as server:
      def ids(prefix: str) -> list[str]:
        names = [f"{prefix}{index:06d}".ljust(11, "x")[:11] for index in range(args.clips)]
        for name in names:
          server.alias(f"{name}.mp4", "source.mp4")
        return names

      output_dir = os.path.join(workspace, "out")
      run_batch(server, ids("warm"), output_dir, 1, True, args.span, starts[:1])  # imports, yt-dlp's first use
      measured: dict[tuple[int, bool], list[Run]] = {}
      for repeat in range(args.repeats):
        for concurrency in args.concurrency:
          for verify in (False, True):
            run = run_batch(server, ids(f"{repeat}c{concurrency}{'v' if verify else 'd'}"), output_dir, concurrency,
                            verify, args.span, starts)
            measured.setdefault((concurrency, verify), []).append(run)
            print(f"  {run.mode}, concurrency {concurrency}: {run.clips_per_s:.2f} clips/s", flush=True)
      runs = [sorted(batch, key=lambda run: run.wall_s)[len(batch) // 2] for batch in measured.values()]
  print()
  print(format_table(runs))
  print("\nvs alone: throughput relative to download alone at the same concurrency (verification's overhead); "
        "vs conc. 1: relative to concurrency 1 in the same mode. verify s/clip: time inside the verifier "
        "(overlapping across threads). CPU s/clip: this process only; ffmpeg runs in child processes.")


if __name__ == "__main__":
  main()
