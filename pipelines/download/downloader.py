"""Fetches the span of each clip with yt-dlp, verifies it, and says exactly what happened.

Per clip, :class:`ClipDownloader` asks yt-dlp (its Python API) for the section
``[start - margin, end + margin]`` only, at a capped height with audio, then
decodes the file to check it covers the span, then moves it to
``{output_dir}/{clip_id}.{ext}``. Failures are classified
(:mod:`pipelines.download.classify`); transient ones are retried with bounded
exponential backoff and jitter, honouring Retry-After; permanent ones never.
Every clip yields one typed result: :class:`DownloadSuccess` or
:class:`DownloadFailure`.

Sections and their clock. A span [s, e) counts seconds from the source's
first timestamp (its container start time), as players and ``ffmpeg -ss`` do
and as a local file is decoded. yt-dlp cuts sections by running ffmpeg on the
remote URL with ``-ss``/``-t``; without ``force_keyframes_at_cuts`` ffmpeg
copies the streams and the cut snaps back to the keyframe before the section
start: cheap, no re-encoding, and with the margin the span is always inside.
What each step does to timestamps, measured with FFmpeg 9:

* ``-ss`` seeks to that many seconds after the input's first timestamp, and
  ``-copyts -start_at_zero`` hands the muxer the input's timestamps minus that
  first timestamp: source second t (on the span's clock) at time t;
* ``-fflags +genpts`` fills in the timestamps MPEG-PS and MPEG-TS leave out
  (without it ffmpeg hands an MP4 muxer frames a frame early, and an MPEG-PS
  one no timestamps at all after a seek);
* MP4 (an edit list), Matroska and WebM keep the timestamps as handed over;
  the MPEG-PS muxer moves a clock that starts below its 0.5 s preload up to it
  (a section from 0 s starts at 0.54 s) and MPEG-TS adds 1.4 s. So sections of
  such formats are written as MP4 instead (:class:`_KeepTheClockInMp4`).

So presentation time t in a downloaded file is second t of the source: decode
it with ``clock_origin_s=0`` (:attr:`DownloadSuccess.clock_origin_s`). The
result also records where the file starts on that clock (``source_offset_s``).
``exact_cuts=True`` re-encodes for frame-exact cuts instead (slower, lossy);
the clock rule is the same, and MPEG-PS/TS sections are copied regardless.

Requests. yt-dlp is handed a URL from the validated id (never the bare id, which
may start with "-"); the URL template points at YouTube or at a mirror. yt-dlp's
own retries are off: one retry policy, ours, so attempts are counted and
Retry-After is honoured. Concurrency is bounded per downloader; clip starts are
spaced by ``sleep_between_clips_s`` across its threads; yt-dlp's
``sleep_interval_requests`` spaces the extractor's requests.

Credentials. Cookies and proxy credentials never reach logs, errors or results:
every message is scrubbed (:mod:`pipelines.download.scrub`). Each attempt hands
yt-dlp a private copy of the cookies file, because yt-dlp writes cookies back on
exit and concurrent writers would corrupt a shared file.

yt-dlp's console output goes to the ``pipelines.download.ytdlp`` logger at DEBUG.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import functools
import glob
import hashlib
import logging
import math
import os
import random
import re
import shutil
import tempfile
import threading
import time
from typing import Callable, Iterable, Iterator, Optional

import yt_dlp
import yt_dlp.utils
from yt_dlp.postprocessor.common import PostProcessor
from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

from pipelines.download import ffmpeg_log, youtube
from pipelines.download.backoff import RetryPolicy, retry_delay
from pipelines.download.breaker import SystemicFailureBreaker, systemic_message
from pipelines.download.classify import (Classification, challenge_unsolved, classify_exception, classify_ffmpeg_log,
                                         parse_retry_after, reason_for_http_status)
from pipelines.download.identifiers import DEFAULT_URL_TEMPLATE, InvalidYoutubeIdError, UrlTemplate, validate_youtube_id
from pipelines.download.output_paths import UnsafePathError, check_clip_id, clip_file_name, confined_path
from pipelines.download.results import ClipSpan, DownloadFailure, DownloadResult, DownloadSuccess
from pipelines.download.scrub import Scrubber, ScrubbingLogger
from pipelines.download.verify import InvalidMediaError, MediaCheck, MediaVerifier, check_media
from shared.failures import FailureClass, Reason

logger = logging.getLogger(__name__)
ytdlp_logger = logging.getLogger("pipelines.download.ytdlp")

# Extensions a finished download can have; anything else in the work directory is not ours.
MEDIA_EXTENSIONS = ("mp4", "webm", "mkv", "m4a", "mov", "mpg", "ts", "flv", "3gp", "opus", "ogg", "mp3")
# Formats whose muxers move the timestamps they are handed (MPEG-PS up to its
# preload, MPEG-TS by its mux delay): a section in one would lose the source's
# clock, so it is written as MP4 instead, and such a file is never reused.
CLOCK_MOVING_EXTENSIONS = ("mpg", "mpeg", "m2p", "vob", "ts", "m2ts", "mts")
PARTIAL_DIR_NAME = ".partial"
_MAX_MESSAGE_CHARS = 1000
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# ffmpeg's last words on an input it could not open: "Error opening input file URL."
_FFMPEG_INPUT_URL = re.compile(r"Error opening input file (\S+?)\.?$", re.MULTILINE)


def format_selector(max_height: int) -> str:
  """yt-dlp's format string: separate streams capped at `max_height` (YouTube), else one file.

  The generic extractor offers a single format of unknown height for a plain
  URL: the height filters drop it and the final ``best`` takes it.
  """
  return f"bestvideo[height<={max_height}]+bestaudio/best[height<={max_height}]/best"


@dataclasses.dataclass(frozen=True)
class DownloadConfig:
  """How clips are fetched.

  Attributes:
    output_dir: local directory for the clip files (created if missing).
    url_template: where videos come from; ``{ytid}`` is replaced by the id.
      Default YouTube; e.g. ``http://127.0.0.1:8000/{ytid}.mp4`` for a mirror.
    max_height: video height cap in pixels.
    margin_s: seconds fetched before and after the span.
    exact_cuts: re-encode for frame-exact cuts (yt-dlp's force_keyframes_at_cuts);
      off by default: keyframe cuts plus the margin already contain the span.
    cookies_file: Netscape cookies file handed to yt-dlp (never logged).
    proxy: proxy URL, may hold credentials (never logged).
    socket_timeout_s: yt-dlp's socket timeout, also ffmpeg's read/write timeout
      (a stalled server fails after this long instead of hanging the worker).
    concurrency: clips downloaded at once by this downloader.
    sleep_between_clips_s: least time between two clip attempts starting, over
      all of this downloader's threads (plus up to 50% random extra).
    sleep_between_requests_s: yt-dlp's pause between the extractor's requests.
    rate_limit_bytes_per_s: yt-dlp's download rate cap (its own HTTP downloader;
      ffmpeg section downloads are not capped by it).
    retry: when transient and invalid-media failures are retried.
    require_audio: a file without audio is invalid media (default: allowed,
      the contract records has_audio).
    max_missing_s: how much of the span a stream may fail to cover (sources
      often end a fraction of a second before the annotated end).
    reuse_existing: a verified ``{clip_id}.*`` already in output_dir is
      returned without downloading (Beam retries bundles; reruns resume).
    ffmpeg_path: the ffmpeg binary; default imageio-ffmpeg's bundled one.
    ytdlp_verbose: yt-dlp's verbose mode (debug lines, scrubbed, at DEBUG).
    extractor_args: yt-dlp ``--extractor-args`` values, e.g.
      "youtube:player_client=default,mweb" (see pipelines.download.youtube).
    js_runtimes: yt-dlp ``--js-runtimes`` values enabled besides deno, e.g. "node".
    plugin_dirs: directories yt-dlp loads plugins from (PO-token providers).
    breaker_threshold: failures in a row that point at this machine rather than
      the clips (pipelines.download.breaker) after which it stops fetching; 0: never.
  """

  output_dir: str
  url_template: str = DEFAULT_URL_TEMPLATE
  max_height: int = 360
  margin_s: float = 1.0
  exact_cuts: bool = False
  cookies_file: Optional[str] = None
  proxy: Optional[str] = None
  socket_timeout_s: float = 20.0
  concurrency: int = 2
  sleep_between_clips_s: float = 0.0
  sleep_between_requests_s: float = 0.0
  rate_limit_bytes_per_s: Optional[int] = None
  retry: RetryPolicy = RetryPolicy()
  require_audio: bool = False
  max_missing_s: float = 0.5
  reuse_existing: bool = True
  ffmpeg_path: Optional[str] = None
  ytdlp_verbose: bool = False
  extractor_args: tuple[str, ...] = ()
  js_runtimes: tuple[str, ...] = ()
  plugin_dirs: tuple[str, ...] = ()
  breaker_threshold: int = 10

  def __post_init__(self):
    UrlTemplate(self.url_template)  # raises InvalidUrlTemplateError early
    youtube.ytdlp_youtube_params(self.extractor_args, self.js_runtimes)  # raises YoutubeOptionError early
    missing = [d for d in self.plugin_dirs if not os.path.isdir(d)]
    if missing:
      raise FileNotFoundError(f"plugin directories not found: {', '.join(missing)}")
    if self.max_height <= 0:
      raise ValueError(f"max_height must be positive, got {self.max_height}")
    if self.margin_s < 0 or not math.isfinite(self.margin_s):
      raise ValueError(f"margin_s must be a finite non-negative number, got {self.margin_s}")
    if self.socket_timeout_s <= 0:
      raise ValueError(f"socket_timeout_s must be positive, got {self.socket_timeout_s}")
    if self.concurrency < 1:
      raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
    if self.sleep_between_clips_s < 0 or self.sleep_between_requests_s < 0:
      raise ValueError("sleeps must not be negative")
    if self.breaker_threshold < 0:
      raise ValueError(f"breaker_threshold must not be negative, got {self.breaker_threshold}")
    if self.max_missing_s < 0:
      raise ValueError(f"max_missing_s must not be negative, got {self.max_missing_s}")
    if self.cookies_file is not None and not os.path.isfile(self.cookies_file):
      raise FileNotFoundError(f"cookies file not found: {self.cookies_file}")


class _KeepTheClockInMp4(PostProcessor):
  """Before the download: a format in a container that moves timestamps is written as MP4.

  Runs on the chosen format (yt-dlp's "video" stage), before the file name and
  ffmpeg's output format are decided from its extension. Such a section is
  also copied, never re-encoded for exact cuts: ffmpeg decoding MPEG-PS after
  an input seek shifts every frame by one (measured: +40 ms at 25 fps).
  """

  def run(self, info):
    if str(info.get("ext", "")).lower() in CLOCK_MOVING_EXTENSIONS:
      info["ext"] = "mp4"
      # Each attempt has its own YoutubeDL, so this changes this download only.
      self._downloader.params["force_keyframes_at_cuts"] = False
    return [], info


class _TlsContexts:
  """The TLS contexts of yt-dlp's request handlers, made once per thread and TLS setting, then reused.

  Every YoutubeDL makes request handlers of its own, and each handler a TLS
  context that parses the whole CA bundle: about 30 ms of CPU per attempt, as
  much as the rest of what yt-dlp does for a clip of the local server. A
  context depends only on its handler's TLS settings (the key: certificate
  verification, the CA source, legacy support, the client certificate);
  cookies, proxies and headers stay each attempt's own. Threads do not share
  contexts (urllib3 sets options on one as it connects), as yt-dlp's
  handlers, each used by one attempt at a time, do not.
  """

  def __init__(self):
    self._local = threading.local()

  def install(self, director) -> None:
    """Makes the handlers of a YoutubeDL's request director take their contexts from here."""
    for handler in director.handlers.values():
      handler._make_sslcontext = functools.partial(self._context_for, handler)  # pylint: disable=protected-access

  def _context_for(self, handler, legacy_ssl_support: Optional[bool] = None):
    legacy = handler.legacy_ssl_support if legacy_ssl_support is None else legacy_ssl_support
    client_certificate = tuple(sorted(handler._client_cert.items()))  # pylint: disable=protected-access
    key = (type(handler), handler.verify, handler.prefer_system_certs, bool(legacy), client_certificate)
    contexts = self._local.__dict__.setdefault("contexts", {})
    if key not in contexts:
      contexts[key] = type(handler)._make_sslcontext(handler, legacy_ssl_support=legacy_ssl_support)
    return contexts[key]


class _AttemptYoutubeDL(yt_dlp.YoutubeDL):
  """A YoutubeDL for one attempt, made without redoing what is the same for every attempt.

  yt-dlp works its list of extractors out anew for every YoutubeDL, in a
  pass quadratic in their 1,700 names (about 60 ms of CPU, half of what it
  spent on an attempt); here the downloader's list is handed in, as yt-dlp
  made it once. TLS contexts come from `tls_contexts`. The YoutubeDL, its
  extractor instances, cookies and connections are the attempt's own.

  Args:
    params: yt-dlp's parameters for the attempt.
    extractors: yt-dlp's default extractors, in its order (classes, or instances whose type to make).
    tls_contexts: where its request handlers take their TLS contexts.
  """

  def __init__(self, params: dict, extractors: tuple, tls_contexts: _TlsContexts):
    self._tls_contexts = tls_contexts
    # The list made once is yt-dlp's default one: parameters that choose others get yt-dlp's own pass.
    own_choice = "allowed_extractors" in params
    super().__init__(params, auto_init=own_choice)
    if own_choice:
      return
    if params.get("verbose"):
      self.print_debug_header()  # what auto_init would print
    for extractor in extractors:
      self.add_info_extractor(extractor if isinstance(extractor, type) else type(extractor)())

  def build_request_director(self, handlers, preferences=None):
    director = super().build_request_director(handlers, preferences)
    self._tls_contexts.install(director)
    return director


class _AttemptFailed(Exception):
  """One attempt failed; carries the verdict and a scrubbed message."""

  def __init__(self, classification: Classification, message: str):
    super().__init__(message)
    self.classification = classification
    self.message = message


class _WarningRecorder:
  """yt-dlp's logger for one attempt: forwards everything, keeps the warnings (they tell why formats are missing)."""

  def __init__(self, logger: ScrubbingLogger):
    self._logger = logger
    self.warnings: list[str] = []

  def debug(self, message: str) -> None:
    self._logger.debug(message)

  def info(self, message: str) -> None:
    self._logger.info(message)

  def warning(self, message: str, *args, **kwargs) -> None:
    self.warnings.append(message)
    self._logger.warning(message, *args, **kwargs)

  def error(self, message: str, *args, **kwargs) -> None:
    self._logger.error(message, *args, **kwargs)


class _StartPacer:
  """Spaces the starts of attempts by at least `interval_s` (+ jitter), across threads."""

  def __init__(self, interval_s: float, rng: random.Random):
    self._interval_s = interval_s
    self._rng = rng
    self._lock = threading.Lock()
    self._next_start = 0.0

  def wait_turn(self) -> None:
    if self._interval_s <= 0:
      return
    with self._lock:
      now = time.monotonic()
      start = max(now, self._next_start)
      self._next_start = start + self._interval_s * (1.0 + 0.5 * self._rng.random())
    if start > now:
      time.sleep(start - now)


class ClipDownloader:
  """Downloads clip sections; thread-safe; one instance per worker process is enough.

  Args:
    config: how to download.
    verifier: decodes a downloaded file and checks it covers the span
      (raises InvalidMediaError otherwise); default check_media.
    sleep: the function used to wait between attempts (tests may record waits).
    rng: jitter source (tests may seed it).
  """

  def __init__(self, config: DownloadConfig, verifier: MediaVerifier = check_media,
               sleep: Callable[[float], None] = time.sleep, rng: Optional[random.Random] = None):
    self.config = config
    self._verifier = verifier
    self._urls = UrlTemplate(config.url_template)
    self._scrub = Scrubber.for_credentials(proxy=config.proxy, cookies_file=config.cookies_file)
    self._ytdlp_log = ScrubbingLogger(ytdlp_logger, self._scrub)
    self._ffmpeg = ffmpeg_log.logging_ffmpeg(config.ffmpeg_path or ffmpeg_log.bundled_ffmpeg())
    youtube.load_plugins(config.plugin_dirs)
    self._youtube_params = youtube.ytdlp_youtube_params(config.extractor_args, config.js_runtimes)
    self._extractors = _default_extractors(self._ytdlp_log)
    self._tls_contexts = _TlsContexts()
    self._breaker = SystemicFailureBreaker(config.breaker_threshold)
    self._slots = threading.BoundedSemaphore(config.concurrency)
    self._rng = rng or random.Random()
    self._rng_lock = threading.Lock()
    self._pacer = _StartPacer(config.sleep_between_clips_s, self._rng)
    self._sleep = sleep
    os.makedirs(config.output_dir, exist_ok=True)
    self._output_dir = os.path.realpath(config.output_dir)
    self._partial_dir = os.path.join(self._output_dir, PARTIAL_DIR_NAME)
    os.makedirs(self._partial_dir, exist_ok=True)

  # -- public -----------------------------------------------------------------
  @property
  def breaker(self) -> SystemicFailureBreaker:
    """Whether this downloader stopped after a run of failures pointing at itself (pipelines.download.breaker)."""
    return self._breaker

  def download(self, clip: ClipSpan) -> DownloadResult:
    """Fetches one clip's section and verifies it; never raises for a clip's own failure."""
    refused = self._refuse_malformed(clip)
    if refused is not None:
      return refused
    if self.config.reuse_existing:
      reused = self._reuse_existing(clip)
      if reused is not None:
        return reused
    if self._breaker.open:
      return self._failure(clip, Reason.SYSTEMIC, systemic_message(
          self._breaker.trigger, f"not fetched: {self._breaker.describe()}"), attempts=0)
    result = self._fetch(clip)
    self._breaker.record(result.ok, None if result.ok else result.reason)
    return result

  def _fetch(self, clip: ClipSpan) -> DownloadResult:
    """The attempts at one clip, retried as the RetryPolicy says."""
    attempts = 0
    invalid_media_attempts = 0
    reasons = []
    while True:
      attempts += 1
      with self._slots:
        self._pacer.wait_turn()
        try:
          return self._attempt(clip, attempts)
        except _AttemptFailed as failure:
          verdict, message = failure.classification, failure.message
      logger.debug("clip %s attempt %d failed: %s (%s)", clip.clip_id, attempts, verdict.reason.value, message)
      reasons.append(verdict.reason)

      if verdict.failure_class is FailureClass.INVALID_MEDIA:
        invalid_media_attempts += 1
        retry = invalid_media_attempts <= self.config.retry.invalid_media_retries
      else:
        retry = verdict.retryable
      delay = None
      if retry:
        with self._rng_lock:
          delay = retry_delay(self.config.retry, attempts, verdict.retry_after_s, self._rng)
      if delay is None:
        if (verdict.retry_after_s is not None and verdict.retry_after_s > self.config.retry.max_retry_after_s
            and attempts < self.config.retry.max_attempts):
          cap = self.config.retry.max_retry_after_s
          message += f" (Retry-After {verdict.retry_after_s:.0f} s exceeds the {cap:.0f} s cap)"
        reason = verdict.reason
        if attempts > 1 and all(r is Reason.TRUNCATED for r in reasons):
          # Cut short every time: the file is, not the transfer.
          reason = Reason.TRUNCATED_MEDIA
          message += f" (on all {attempts} attempts)"
        return self._failure(clip, reason, message, attempts, verdict.retry_after_s)
      logger.debug("clip %s: retrying in %.2f s", clip.clip_id, delay)
      self._sleep(delay)  # outside the slot: other clips proceed meanwhile

  def download_many(self, clips: Iterable[ClipSpan]) -> Iterator[DownloadResult]:
    """Downloads clips on `concurrency` threads; yields results as they finish (any order).

    At most twice `concurrency` clips are in flight, so a long input is read lazily.
    """
    window = 2 * self.config.concurrency
    with concurrent.futures.ThreadPoolExecutor(max_workers=self.config.concurrency,
                                               thread_name_prefix="clip-download") as pool:
      pending = set()
      for clip in clips:
        pending.add(pool.submit(self.download, clip))
        if len(pending) >= window:
          done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
          yield from (future.result() for future in done)
      for future in concurrent.futures.as_completed(pending):
        yield future.result()

  # -- validation and reuse ---------------------------------------------------
  def _refuse_malformed(self, clip: ClipSpan) -> Optional[DownloadFailure]:
    """A failure for a clip that must not reach the network, else None."""
    try:
      validate_youtube_id(clip.source_id)
    except InvalidYoutubeIdError as error:
      return self._failure(clip, Reason.INVALID_ID, str(error), attempts=0)
    try:
      check_clip_id(clip.clip_id)
      confined_path(self._output_dir, clip_file_name(clip.clip_id, "mp4"))
    except UnsafePathError as error:
      return self._failure(clip, Reason.UNSAFE_CLIP_ID, str(error), attempts=0)
    start, end = clip.start_s, clip.end_s
    if not (isinstance(start, (int, float)) and isinstance(end, (int, float)) and math.isfinite(start)
            and math.isfinite(end) and 0 <= start < end):
      return self._failure(clip, Reason.INVALID_SPAN, f"span must satisfy 0 <= start < end, got {start!r}-{end!r}",
                           attempts=0)
    return None

  def _existing_files(self, clip_id: str) -> list[str]:
    """Files already named for the clip, only those that resolve inside the output directory."""
    pattern = os.path.join(self._output_dir, glob.escape(clip_id) + ".*")
    found = []
    for path in sorted(glob.glob(pattern)):
      if os.path.splitext(path)[1][1:] not in MEDIA_EXTENSIONS:
        continue
      try:
        resolved = confined_path(self._output_dir, os.path.basename(path))
      except UnsafePathError:
        logger.warning("ignoring %s: it resolves outside %s", path, self._output_dir)
        continue
      if os.path.isfile(resolved):
        found.append(path)
    return found

  def _reuse_existing(self, clip: ClipSpan) -> Optional[DownloadSuccess]:
    for path in self._existing_files(clip.clip_id):
      if os.path.splitext(path)[1][1:].lower() in CLOCK_MOVING_EXTENSIONS:
        logger.info("clip %s: %s does not keep the source's clock; downloading again", clip.clip_id, path)
        continue
      try:
        media = self._verify(path, clip)
      except InvalidMediaError as error:
        logger.info("clip %s: existing %s is not usable (%s); downloading again", clip.clip_id, path, error.detail)
        continue
      section_start, section_end = self._section(clip)
      return self._success(clip, path, media, section_start, section_end, attempts=0)
    return None

  # -- one attempt -------------------------------------------------------------
  def _section(self, clip: ClipSpan) -> tuple[float, float]:
    return max(0.0, clip.start_s - self.config.margin_s), clip.end_s + self.config.margin_s

  def _attempt(self, clip: ClipSpan, attempt: int) -> DownloadSuccess:
    section_start, section_end = self._section(clip)
    work_dir = tempfile.mkdtemp(prefix=f"{clip.clip_id}.{attempt}.", dir=self._partial_dir)
    try:
      log_path = os.path.join(work_dir, "ffmpeg.log")
      params = self._ytdlp_params(work_dir, log_path, section_start, section_end)
      ytdlp_said = params["logger"] = _WarningRecorder(self._ytdlp_log)
      url = self._urls.url_for(clip.source_id)
      started = time.monotonic()
      try:
        # yt-dlp decides whether ffmpeg exists from a context variable that its
        # command line sets and its API does not; set it in a private context.
        info = contextvars.copy_context().run(self._run_ytdlp, url, params)
      except Exception as error:  # noqa: BLE001 (everything yt-dlp raises is a failed attempt)
        log_text = ffmpeg_log.read_log_tail(log_path)
        verdict = classify_exception(error, log_text)
        if verdict.reason is Reason.CONNECTION and time.monotonic() - started >= self.config.socket_timeout_s:
          # ffmpeg's -rw_timeout surfaces as a bare I/O error; the clock tells it was a stall.
          verdict = Classification(Reason.TIMEOUT, verdict.retry_after_s)
        verdict = self._asked_again(verdict, log_text, work_dir)
        if verdict.reason is Reason.NO_SUITABLE_FORMAT and challenge_unsolved(ytdlp_said.warnings):
          verdict = Classification(Reason.CHALLENGE_UNSOLVED)  # the formats are hidden, not missing
        raise _AttemptFailed(verdict, self._message(error, log_text)) from None

      log_text = ffmpeg_log.read_log_tail(log_path)
      if log_text.strip():
        logger.debug("clip %s: ffmpeg said: %s", clip.clip_id, self._scrub(log_text.strip()[-500:]))
      downloaded = self._downloaded_file(info, work_dir)
      try:
        media = self._verify(downloaded, clip)
      except InvalidMediaError as error:
        # A transfer cut short can end with ffmpeg exiting 0: the log tells.
        logged = classify_ffmpeg_log(log_text)
        reason = logged if logged is Reason.TRUNCATED else error.reason
        raise _AttemptFailed(Classification(reason), self._message(error, log_text)) from None

      extension = os.path.splitext(downloaded)[1][1:].lower()
      try:
        final_path = confined_path(self._output_dir, clip_file_name(clip.clip_id, extension))
      except UnsafePathError as error:  # e.g. a symlink planted at the clip's file name
        raise _AttemptFailed(Classification(Reason.UNSAFE_CLIP_ID), self._scrub(str(error))) from None
      for stale in self._existing_files(clip.clip_id):
        if stale != final_path:
          os.remove(stale)
      os.replace(downloaded, final_path)
      return self._success(clip, final_path, media, section_start, section_end, attempts=attempt)
    finally:
      shutil.rmtree(work_dir, ignore_errors=True)

  def _asked_again(self, verdict: Classification, ffmpeg_text: str, work_dir: str) -> Classification:
    """The verdict, made exact by asking the media URL again where ffmpeg's words leave it open.

    ffmpeg names only some statuses (400, 401, 403, 404, 429, 5xx) and never
    passes on headers: a 407 from a proxy, a 416 for an empty file and every
    other 4xx read "4XX Client Error", and a 429 comes without its
    Retry-After. One request like ffmpeg's first (through the same proxy)
    tells the status and the Retry-After.
    """
    unclear = verdict.reason is Reason.HTTP_CLIENT_ERROR or (
        verdict.reason is Reason.RATE_LIMITED and verdict.retry_after_s is None)
    found = _FFMPEG_INPUT_URL.search(ffmpeg_text) if unclear else None
    if found is None:
      return verdict
    params = {"logger": self._ytdlp_log, "socket_timeout": self.config.socket_timeout_s, "retries": 0}
    if self.config.proxy:
      params["proxy"] = self.config.proxy
    if self.config.cookies_file:
      params["cookiefile"] = shutil.copyfile(self.config.cookies_file, os.path.join(work_dir, "probe-cookies.txt"))
    try:
      with yt_dlp.YoutubeDL(params) as ydl:
        ydl.urlopen(yt_dlp.networking.Request(found.group(1), headers={"Range": "bytes=0-"})).close()
    except yt_dlp.networking.exceptions.HTTPError as error:
      retry_after = parse_retry_after(error.response.headers.get("Retry-After"))
      return Classification(reason_for_http_status(error.status), retry_after_s=retry_after)
    except Exception as error:  # noqa: BLE001 (the probe only refines; the first verdict stands)
      logger.debug("asking %s again failed: %s", self._scrub(found.group(1)), self._scrub(str(error)))
    return verdict

  def _youtube_dl(self, params: dict) -> yt_dlp.YoutubeDL:
    """A YoutubeDL of its own for one attempt, made without redoing what is the same for every attempt."""
    return _AttemptYoutubeDL(params, self._extractors, self._tls_contexts)

  def _run_ytdlp(self, url: str, params: dict) -> dict:
    FFmpegPostProcessor._ffmpeg_location.set(self._ffmpeg.path)
    with self._youtube_dl(params) as ydl:
      ydl.add_post_processor(_KeepTheClockInMp4(), when="video")
      info = ydl.extract_info(url, download=True)
    if info is None:
      raise yt_dlp.utils.DownloadError("yt-dlp returned no information")
    return info

  def _ytdlp_params(self, work_dir: str, log_path: str, section_start: float, section_end: float) -> dict:
    config = self.config
    ffmpeg_input_args = [
        # Keep the source's clock in the file (see the module docstring).
        "-copyts", "-start_at_zero", "-fflags", "+genpts",
        # ffmpeg waits forever on a stalled server without this (microseconds).
        "-rw_timeout", str(int(config.socket_timeout_s * 1_000_000)),
        "-loglevel", "warning", "-nostats",
    ]
    if self._ffmpeg.captures_stderr:
      ffmpeg_input_args += [ffmpeg_log.LOG_OPTION, log_path]
    params = {
        "format": format_selector(config.max_height),
        "download_ranges": yt_dlp.utils.download_range_func(None, [(section_start, section_end)]),
        "force_keyframes_at_cuts": config.exact_cuts,
        "ffmpeg_location": self._ffmpeg.path,
        "external_downloader_args": {"ffmpeg_i": ffmpeg_input_args},
        "paths": {"home": work_dir, "temp": work_dir},
        "outtmpl": {"default": "media.%(ext)s"},  # fixed: no clip data in yt-dlp's template language
        "logger": self._ytdlp_log,
        "verbose": config.ytdlp_verbose,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "noplaylist": True,
        "overwrites": True,
        "socket_timeout": config.socket_timeout_s,
        # Our retry loop is the only one: it classifies, counts and honours Retry-After.
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "sleep_interval_requests": config.sleep_between_requests_s or None,
        "writeinfojson": False,
        "writethumbnail": False,
        "writesubtitles": False,
    }
    params.update(self._youtube_params)
    if config.rate_limit_bytes_per_s:
      params["ratelimit"] = config.rate_limit_bytes_per_s
    if config.proxy:
      params["proxy"] = config.proxy
    if config.cookies_file:
      private_copy = os.path.join(work_dir, "cookies.txt")
      shutil.copyfile(config.cookies_file, private_copy)
      params["cookiefile"] = private_copy
    return params

  def _downloaded_file(self, info: dict, work_dir: str) -> str:
    """The media file yt-dlp wrote in work_dir."""
    candidates = [download.get("filepath") for download in info.get("requested_downloads") or []]
    candidates += sorted(glob.glob(os.path.join(glob.escape(work_dir), "media.*")))
    for path in candidates:
      if not path:
        continue
      path = os.path.realpath(path)
      extension = os.path.splitext(path)[1][1:].lower()
      if os.path.dirname(path) == os.path.realpath(work_dir) and extension in MEDIA_EXTENSIONS and os.path.isfile(path):
        return path
    raise _AttemptFailed(Classification(Reason.NOT_MEDIA), "yt-dlp reported success but wrote no media file")

  # -- verification (the one place that decodes) -----------------------------
  def _verify(self, path: str, clip: ClipSpan) -> MediaCheck:
    return self._verifier(path, clip.start_s, clip.end_s, require_video=True, require_audio=self.config.require_audio,
                          max_missing_s=self.config.max_missing_s)

  # -- results -------------------------------------------------------------------
  def _message(self, error: BaseException, ffmpeg_text: str = "") -> str:
    text = getattr(error, "msg", None) or str(error) or type(error).__name__
    text = _ANSI_ESCAPE.sub("", text)
    text = re.sub(r"^ERROR:\s*", "", text.strip())
    lines = [line.strip() for line in ffmpeg_text.splitlines() if line.strip()]
    if lines:
      text += " | ffmpeg: " + " / ".join(lines[-3:])
    text = self._scrub(text)
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[:_MAX_MESSAGE_CHARS - 3] + "..."

  def _failure(self, clip: ClipSpan, reason: Reason, message: str, attempts: int,
               retry_after_s: Optional[float] = None) -> DownloadFailure:
    return DownloadFailure(clip_id=str(clip.clip_id), source_id=str(clip.source_id), start_s=clip.start_s,
                           end_s=clip.end_s, failure_class=reason.failure_class, reason=reason,
                           message=self._scrub(message), attempts=attempts, retry_after_s=retry_after_s)

  def _success(self, clip: ClipSpan, path: str, media: MediaCheck, section_start: float, section_end: float,
               attempts: int) -> DownloadSuccess:
    digest, size = _sha256_of(path)
    return DownloadSuccess(clip_id=clip.clip_id, source_id=clip.source_id, start_s=clip.start_s, end_s=clip.end_s,
                           path=path, num_bytes=size, sha256=digest, source_offset_s=media.origin_s,
                           section_start_s=section_start, section_end_s=section_end, attempts=attempts,
                           media=media)


def _default_extractors(logger: ScrubbingLogger) -> tuple:
  """The extractors, in yt-dlp's order, that yt-dlp gives a YoutubeDL by default: classes, and instances' types.

  Asked of yt-dlp itself, after the downloader's plugins are loaded.
  """
  with yt_dlp.YoutubeDL({"logger": logger, "quiet": True}) as ydl:
    return tuple(ydl._ies.values())  # pylint: disable=protected-access


def remove_partial_downloads(media_dir: str, clip_ids: Iterable[str]) -> int:
  """Removes what killed attempts at these clips left in `media_dir`'s partial directory; returns how many.

  Only these clips' attempts: another build may be downloading other clips into the same directory.
  """
  partial_dir = os.path.join(media_dir, PARTIAL_DIR_NAME)
  try:
    entries = os.listdir(partial_dir)
  except FileNotFoundError:
    return 0
  wanted = set(clip_ids)
  removed = 0
  for name in entries:
    if name.split(".", 1)[0] in wanted:  # attempts are made in "{clip_id}.{attempt}.XXXX"
      shutil.rmtree(os.path.join(partial_dir, name), ignore_errors=True)
      removed += 1
  try:
    os.rmdir(partial_dir)  # only if nothing else is left
  except OSError:
    pass
  return removed


def _sha256_of(path: str) -> tuple[str, int]:
  digest = hashlib.sha256()
  size = 0
  with open(path, "rb") as media:
    for block in iter(lambda: media.read(1 << 20), b""):
      digest.update(block)
      size += len(block)
  return digest.hexdigest(), size
