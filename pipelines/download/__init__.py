"""Fetching the clips of YouTube datasets that are still available, and recording which are not.

Modules (import what you use; this package imports nothing, so the ledger
command line stays fast):

* downloader: ClipDownloader, DownloadConfig: sections via yt-dlp, verified.
* results: DownloadRequest, DownloadSuccess, DownloadFailure.
* classify: classify_exception: which shared.failures.Reason a failed download is.
* options: add_download_arguments, download_config: the flags of every download.
* backoff: RetryPolicy, retry_delay.
* ledger: LedgerRecord, LedgerWriter, read_ledger: the availability ledger.
* verify: check_media: does a file decode and cover its span.
* identifiers, output_paths, scrub, ffmpeg_log: ids and URLs, confined paths,
  credential scrubbing, ffmpeg's per-clip log.

    python -m pipelines.download --help     # download the clips of a CSV
    python -m pipelines.ledger --help       # summarize or list the ledger
"""
