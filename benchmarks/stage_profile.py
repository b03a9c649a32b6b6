"""CPU time per stage of a build's Beam workers, for benchmarks/pipeline_build.py --profile.

Sampling profilers cannot tell CPU from waiting on a loaded machine (py-spy
counts a runnable thread as busy, and on two shared cores most threads of a
worker are runnable but not running), so the stages are timed instead: the
benchmark starts the build with this directory's sitecustomize.py on
PYTHONPATH, which, in Beam worker processes only, wraps the functions below
so that each call adds the CPU time of its own thread (time.thread_time:
user + system, nested stages subtracted from their callers) to its stage.
Each worker appends one line per call to ``{dir}/{pid}.tsv``; the benchmark
adds up the files, and puts next to them what the processes' own /proc
accounting says (the ffmpeg processes a worker waited for, the rest of the
worker, the launcher). Nothing here changes what the build does or writes.

A stage whose function no longer exists is an error, not a silent zero.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import threading
import time

ENV_DIR = "MBT_STAGE_PROFILE_DIR"

# (stage, module, attribute path): the functions timed, by the stage they are
# counted in. A call's nested timed calls count in their own stages.
TIMED = (
    ("download: yt-dlp (extractor, YoutubeDL, ffmpeg start and wait)", "pipelines.download.downloader",
     "ClipDownloader._run_ytdlp"),
    ("download: verification (packets)", "pipelines.download.downloader", "ClipDownloader._verify"),
    ("download: hashing the file", "pipelines.download.downloader", "_sha256_of"),
    ("download: the rest (paths, move, retries)", "pipelines.download.downloader", "ClipDownloader.download"),
    ("ledger appends (fsync'ed)", "pipelines.download.ledger", "LedgerWriter.append"),
    ("features: decode (frames, JPEG, audio)", "shared.media.decode", "ClipDecoder.decode"),
    ("features: log-mel", "shared.media.logmel", "log_mel"),
    ("features: serialize (records.encode)", "shared.records", "encode"),
    ("features: the rest (record, moments)", "pipelines.features", "ExtractFeaturesFn.process"),
    ("staging: write the record's file", "pipelines.shards", "stage_clip"),
    ("shards: read staged records back", "pipelines.shards", "EncodedClip.payload"),
    ("shards: write TFRecord", "shared.records", "tfrecord_writer"),
    ("shards: write ArrayRecord", "shared.records", "array_record_writer"),
    ("shards: the rest (sort, remove staged)", "pipelines.shards", "_WriteShardFn.process"),
    ("download: the downloader's set-up (plugins, extractor list)", "pipelines.download.downloader",
     "ClipDownloader.__init__"),
    ("Beam: bundle processors (DoFn set-up)", "apache_beam.runners.worker.bundle_processor",
     "BundleProcessor.__init__"),
    ("Beam: bundles, the rest (runtime, coders, our other steps)", "apache_beam.runners.worker.bundle_processor",
     "BundleProcessor.process_bundle"),
    ("Beam: instructions, the rest (control plane)", "apache_beam.runners.worker.sdk_worker",
     "SdkWorker.do_instruction"),
)
# Of those, the ones that make a shard writer: a context manager yielding the function that writes a record.
WRITER_FACTORIES = ("tfrecord_writer", "array_record_writer")
# What /proc says on top of the timed stages.
CHILDREN_STAGE = "download: ffmpeg section copy (child processes)"
STARTUP_STAGE = "worker start-up (imports, until the first timed call)"
UNTIMED_STAGE = "worker, untimed (other threads: gRPC, logging, state)"
LAUNCHER_STAGE = "launcher (plan, runner, shuffle)"
MEDIA_CORE_STAGES = tuple(stage for stage, _, _ in TIMED if stage.startswith("features: ") and "rest" not in stage)

_local = threading.local()
_lock = threading.Lock()
_log = None
_started = False


def _record(stage: str, cpu_s: float) -> None:
  global _log
  with _lock:
    if _log is None:
      _log = open(os.path.join(os.environ[ENV_DIR], f"{os.getpid()}.tsv"), "a", buffering=1)
    _log.write(f"{stage}\t{cpu_s:.6f}\n")


def _enter() -> float:
  global _started
  with _lock:
    first, _started = not _started, True
  if first:
    _record(STARTUP_STAGE, time.process_time())  # every thread's CPU before the first timed call
  stack = _local.__dict__.setdefault("stack", [])
  stack.append(0.0)
  return time.thread_time()


def _leave(stage: str, started: float) -> None:
  elapsed = time.thread_time() - started
  stack = _local.stack
  nested = stack.pop()
  if stack:
    stack[-1] += elapsed
  _record(stage, elapsed - nested)


class _TimedWriter:
  """A shard writer (a context manager that yields its write function) whose every step counts in `stage`."""

  def __init__(self, stage: str, manager):
    self._stage = stage
    self._manager = manager

  def __enter__(self):
    return _timed(self._stage, _timed(self._stage, self._manager.__enter__)())

  def __exit__(self, *exc_info):
    return _timed(self._stage, self._manager.__exit__)(*exc_info)


def _timed_writer(stage: str, factory):
  @functools.wraps(factory)
  def timed_writer(*args, **kwargs):
    return _TimedWriter(stage, factory(*args, **kwargs))

  return timed_writer


def _timed(stage: str, function):
  if inspect.isgeneratorfunction(function):
    @functools.wraps(function)
    def timed_generator(*args, **kwargs):
      # Each step of the generator counts; what the consumer does with an output does not.
      steps = function(*args, **kwargs)
      while True:
        started = _enter()
        try:
          output = next(steps)
        except StopIteration:
          return
        finally:
          _leave(stage, started)
        yield output

    return timed_generator

  @functools.wraps(function)
  def timed(*args, **kwargs):
    started = _enter()
    try:
      return function(*args, **kwargs)
    finally:
      _leave(stage, started)

  return timed


def install() -> None:
  """Wraps every TIMED function (raises if one is missing)."""
  for stage, module_name, attribute in TIMED:
    owner = importlib.import_module(module_name)
    *path, name = attribute.split(".")
    for part in path:
      owner = getattr(owner, part)
    function = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if function is None:
      raise AttributeError(f"stage profile: {module_name}.{attribute} no longer exists; update {__file__}")
    wrap = _timed_writer if attribute in WRITER_FACTORIES else _timed
    setattr(owner, name, wrap(stage, function))


def read_stage_cpu(directory: str) -> dict[int, dict[str, float]]:
  """pid -> stage -> CPU seconds, from the files the workers wrote."""
  found = {}
  for name in os.listdir(directory):
    if not name.endswith(".tsv"):
      continue
    stages = found.setdefault(int(name[:-4]), {})
    with open(os.path.join(directory, name)) as log:
      for line in log:
        stage, _, seconds = line.rstrip("\n").partition("\t")
        if seconds:  # a line cut short by a killed worker has none
          stages[stage] = stages.get(stage, 0.0) + float(seconds)
  return found


SITECUSTOMIZE = '''\
# Written by benchmarks/pipeline_build.py --profile: times the stages of Beam workers only.
import os, sys
if os.environ.get({env!r}) and any("sdk_worker_main" in arg for arg in getattr(sys, "orig_argv", ())):
  sys.path.insert(0, {benchmarks!r})
  import stage_profile
  stage_profile.install()
'''


def write_sitecustomize(directory: str) -> None:
  """Puts the sitecustomize.py that installs the timers into `directory` (to go on PYTHONPATH)."""
  with open(os.path.join(directory, "sitecustomize.py"), "w") as hook:
    hook.write(SITECUSTOMIZE.format(env=ENV_DIR, benchmarks=os.path.dirname(os.path.abspath(__file__))))
