"""The options of a download, defined once for every command that downloads.

``python -m pipelines.download`` and the YouTube builds (``build_vggsound``,
``build_audioset``) take the same flags, with the same names, defaults and
meanings, and turn them into a :class:`DownloadConfig` the same way.
"""

from __future__ import annotations

import argparse

from pipelines.download.backoff import RetryPolicy
from pipelines.download.downloader import DownloadConfig
from pipelines.download.identifiers import DEFAULT_URL_TEMPLATE

_DEFAULT_CONFIG = DownloadConfig(output_dir=".")
_DEFAULT_RETRY = RetryPolicy()


def add_download_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
  """Adds the "download" option group; returns it, for a command's own download options."""
  group = parser.add_argument_group("download")
  group.add_argument("--url_template", default=DEFAULT_URL_TEMPLATE,
                     help="where videos come from; {ytid} is replaced (default %(default)s; a mirror: "
                     "http://127.0.0.1:8000/{ytid}.mp4)")
  group.add_argument("--max_height", type=int, default=_DEFAULT_CONFIG.max_height,
                     help="video height cap (default %(default)s)")
  group.add_argument("--margin", type=float, default=_DEFAULT_CONFIG.margin_s,
                     help="seconds fetched on each side of the span (default %(default)s)")
  group.add_argument("--exact_cuts", action="store_true", help="re-encode for frame-exact cuts (slower)")
  group.add_argument("--cookies", default=None, help="Netscape cookies file for yt-dlp (never logged)")
  group.add_argument("--proxy", default=None, help="proxy URL, may contain user:password@ (never logged)")
  group.add_argument("--concurrency", type=int, default=_DEFAULT_CONFIG.concurrency,
                     help="clips downloaded at once (per worker; default %(default)s)")
  group.add_argument("--sleep_interval", type=float, default=_DEFAULT_CONFIG.sleep_between_clips_s,
                     help="least seconds between two downloads starting (per worker, plus up to 50%% jitter)")
  group.add_argument("--sleep_requests", type=float, default=_DEFAULT_CONFIG.sleep_between_requests_s,
                     help="seconds yt-dlp waits between its extraction requests")
  group.add_argument("--rate_limit", type=int, default=None, help="download rate cap, bytes/s (yt-dlp's own downloader)")
  group.add_argument("--max_attempts", type=int, default=_DEFAULT_RETRY.max_attempts,
                     help="attempts per clip for transient failures (default %(default)s)")
  group.add_argument("--retry_base_delay", type=float, default=_DEFAULT_RETRY.base_delay_s,
                     help="first backoff delay, seconds (default %(default)s)")
  group.add_argument("--retry_max_delay", type=float, default=_DEFAULT_RETRY.max_delay_s,
                     help="longest backoff delay, seconds (default %(default)s)")
  group.add_argument("--max_retry_after", type=float, default=_DEFAULT_RETRY.max_retry_after_s,
                     help="longest Retry-After honoured; a longer one ends the clip's retries (default %(default)s)")
  group.add_argument("--socket_timeout", type=float, default=_DEFAULT_CONFIG.socket_timeout_s,
                     help="seconds before a silent server fails (default %(default)s)")
  group.add_argument("--breaker_threshold", type=int, default=_DEFAULT_CONFIG.breaker_threshold,
                     help="failures in a row that point at this machine, not the clips (403s on media, bot checks, "
                     "sign-in, proxy, JS challenge) after which a worker stops fetching and the build ends with "
                     "what to fix; such failures are never recorded as permanent (default %(default)s, 0: never)")
  youtube_group = parser.add_argument_group("YouTube (yt-dlp's own syntax; see WORKSPACE.md, \"Real YouTube\")")
  youtube_group.add_argument("--extractor_args", action="append", default=[], metavar="IE_KEY:ARGS",
                             help="yt-dlp --extractor-args, e.g. 'youtube:player_client=default,mweb;"
                             "po_token=mweb.gvs+TOKEN' (repeatable)")
  youtube_group.add_argument("--js_runtimes", action="append", default=[], metavar="RUNTIME[:PATH]",
                             help="yt-dlp --js-runtimes: a JavaScript runtime to enable besides deno, e.g. node "
                             "(repeatable)")
  youtube_group.add_argument("--plugin_dirs", action="append", default=[], metavar="DIR",
                             help="a directory yt-dlp loads plugins from, e.g. a PO-token provider (repeatable)")
  return group


def download_config(args: argparse.Namespace, output_dir: str, *, reuse_existing: bool = True,
                    require_audio: bool = False) -> DownloadConfig:
  """The DownloadConfig the options in `args` describe, downloading into `output_dir`.

  Args:
    reuse_existing: a verified file already in `output_dir` is not downloaded again.
    require_audio: a clip without an audio stream fails as invalid media.
  """
  return DownloadConfig(
      output_dir=output_dir, url_template=args.url_template, max_height=args.max_height, margin_s=args.margin,
      exact_cuts=args.exact_cuts, cookies_file=args.cookies, proxy=args.proxy, socket_timeout_s=args.socket_timeout,
      concurrency=args.concurrency, sleep_between_clips_s=args.sleep_interval,
      sleep_between_requests_s=args.sleep_requests, rate_limit_bytes_per_s=args.rate_limit,
      require_audio=require_audio, reuse_existing=reuse_existing, extractor_args=tuple(args.extractor_args),
      js_runtimes=tuple(args.js_runtimes), plugin_dirs=tuple(args.plugin_dirs),
      breaker_threshold=args.breaker_threshold,
      retry=RetryPolicy(max_attempts=args.max_attempts, base_delay_s=args.retry_base_delay,
                        max_delay_s=args.retry_max_delay, max_retry_after_s=args.max_retry_after))
