"""A local media mirror: an HTTP server on 127.0.0.1 with Range support and faults.

Tests and demos run real yt-dlp (and the ffmpeg it drives) against this server
instead of YouTube. It serves the files of one directory at ``/{name}`` and
does what the downloader's correctness depends on:

* Range requests (``206 Partial Content``, ``Content-Range``,
  ``Accept-Ranges: bytes``, ``416`` when unsatisfiable). ffmpeg cuts a section
  out of an mp4 whose index sits at the end of the file by seeking there with
  a Range request; ``python -m http.server`` ignores Range, and yt-dlp then
  writes an empty file and reports success.
* Content types that yt-dlp's generic extractor recognises as media
  (``video/mp4``, ``video/webm``, ...), so a URL is taken as a direct link.
* Faults injected per path (:class:`Fault`): an HTTP status (404, 403, 410,
  429 with ``Retry-After``, 500, 503, ...), a stalled response (headers, then
  no body), a truncated body (a ``Content-Length`` larger than what is sent,
  then the connection closes), a body that is not media, each either always or
  for a number of requests only ("fail N times, then succeed").
* A thread-safe log of the requests it saw per path (:class:`RequestRecord`),
  so a test can assert that retries and backoff really happened.

Use it as a context manager::

    with MediaServer(directory) as server:
      server.inject("abc.mp4", Fault.http_status(429, retry_after_s=1, times=1))
      url = server.url("abc.mp4")
      ...
      assert server.request_count("abc.mp4") >= 2

or from the command line (serves until interrupted)::

    python -m testsupport.media_server DIR --port 8000 --fault broken.mp4=503

This module must not import pipelines/ or trainer/: the tests of both, and the demo, use it.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import http.server
import logging
import mimetypes
import os
import re
import shutil
import socket
import sys
import threading
import time
import urllib.parse
from typing import Optional

logger = logging.getLogger(__name__)

# Types the standard mimetypes table lacks or gets wrong on some systems; yt-dlp's
# generic extractor takes audio/* and video/* as direct media links.
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".m4a": "audio/mp4",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".ts": "video/mp2t",
    ".mov": "video/quicktime",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mpd": "application/dash+xml",  # a DASH manifest: yt-dlp's generic extractor parses it
    ".m3u8": "application/vnd.apple.mpegurl",
}

_CHUNK_BYTES = 64 * 1024
_RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")
# Server-side sockets stop waiting on a client after this long.
_CLIENT_SOCKET_TIMEOUT_S = 60.0


def content_type_for(name: str) -> str:
  """The Content-Type served for a file name."""
  extension = os.path.splitext(name)[1].lower()
  if extension in MEDIA_TYPES:
    return MEDIA_TYPES[extension]
  guessed, _ = mimetypes.guess_type(name)
  return guessed or "application/octet-stream"


class FaultKind(enum.Enum):
  """What a :class:`Fault` does to a request."""

  HTTP_STATUS = "status"  # an error status with a short text body
  STALL = "stall"  # 200 and headers, then no body until the stall ends; then close
  TRUNCATE = "truncate"  # the full Content-Length, part of the body, then close
  NOT_MEDIA = "not_media"  # 200 with a body that is not the file


class FaultSpecError(ValueError):
  """A fault description (command line or constructor) is malformed."""


@dataclasses.dataclass
class Fault:
  """A failure the server injects into requests for one path.

  Build faults with the class methods (:meth:`http_status`, :meth:`stall`,
  :meth:`truncate`, :meth:`not_media`) or :meth:`parse`.

  Attributes:
    kind: what happens to an affected request.
    status: the HTTP status for HTTP_STATUS faults.
    retry_after_s: value of the Retry-After header (whole seconds, rounded up)
      sent with an HTTP_STATUS fault; None sends none.
    stall_s: how long a STALL holds the connection open without sending body
      bytes before closing it (server shutdown ends it early).
    fraction: for TRUNCATE, the part of the announced body that is sent.
    body: for NOT_MEDIA, the bytes served instead of the file.
    content_type: for NOT_MEDIA, the Content-Type served; None keeps the
      file's media type, which is how a misbehaving mirror lies.
    skip: the first `skip` requests for the path are served normally before the
      fault applies (to hit a later request, e.g. ffmpeg's after yt-dlp's probe).
    times: how many requests the fault affects after the skipped ones; None
      means every one. ``times=2`` is "fail twice, then succeed".
  """

  kind: FaultKind
  status: int = 500
  retry_after_s: Optional[float] = None
  stall_s: float = 30.0
  fraction: float = 0.5
  body: bytes = b"<html><body>This is not a media file.</body></html>\n"
  content_type: Optional[str] = None
  skip: int = 0
  times: Optional[int] = None

  def __post_init__(self):
    if not isinstance(self.kind, FaultKind):
      raise FaultSpecError(f"kind must be a FaultKind, got {self.kind!r}")
    if self.kind is FaultKind.HTTP_STATUS and not 400 <= self.status <= 599:
      raise FaultSpecError(f"an injected status must be 4xx or 5xx, got {self.status}")
    if not 0.0 <= self.fraction < 1.0:
      raise FaultSpecError(f"truncate fraction must be in [0, 1), got {self.fraction}")
    if self.skip < 0 or (self.times is not None and self.times < 0):
      raise FaultSpecError(f"skip and times must not be negative, got skip={self.skip} times={self.times}")
    if self.stall_s < 0 or (self.retry_after_s is not None and self.retry_after_s < 0):
      raise FaultSpecError("stall_s and retry_after_s must not be negative")

  @classmethod
  def http_status(cls, status: int, retry_after_s: Optional[float] = None, skip: int = 0,
                  times: Optional[int] = None) -> "Fault":
    """Answers with `status` (e.g. 404, 403, 410, 429, 500, 503)."""
    return cls(FaultKind.HTTP_STATUS, status=status, retry_after_s=retry_after_s, skip=skip, times=times)

  @classmethod
  def stall(cls, stall_s: float = 30.0, skip: int = 0, times: Optional[int] = None) -> "Fault":
    """Sends 200 and headers, then nothing for `stall_s` seconds, then closes."""
    return cls(FaultKind.STALL, stall_s=stall_s, skip=skip, times=times)

  @classmethod
  def truncate(cls, fraction: float = 0.5, skip: int = 0, times: Optional[int] = None) -> "Fault":
    """Announces the full length but sends only `fraction` of it, then closes."""
    return cls(FaultKind.TRUNCATE, fraction=fraction, skip=skip, times=times)

  @classmethod
  def not_media(cls, body: Optional[bytes] = None, content_type: Optional[str] = None, skip: int = 0,
                times: Optional[int] = None) -> "Fault":
    """Serves `body` (default: a line of HTML) instead of the file."""
    fault = cls(FaultKind.NOT_MEDIA, content_type=content_type, skip=skip, times=times)
    if body is not None:
      fault.body = body
    return fault

  @classmethod
  def parse(cls, text: str) -> "Fault":
    """Parses a command-line fault: ``KIND[,key=value...]``.

    KIND is an HTTP status (``404``, ``429``...), ``stall``, ``truncate`` or
    ``not_media``; keys are ``retry_after``, ``stall``, ``fraction``,
    ``content_type``, ``skip``, ``times``. Examples: ``503,times=2``,
    ``429,retry_after=1``, ``stall,stall=10``, ``truncate,fraction=0.3``.
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
      raise FaultSpecError("empty fault description")
    head, *options = parts
    values = {}
    for option in options:
      key, sep, value = option.partition("=")
      if not sep:
        raise FaultSpecError(f"fault option {option!r} is not key=value (in {text!r})")
      values[key.strip()] = value.strip()
    known = {"retry_after", "stall", "fraction", "content_type", "skip", "times"}
    unknown = set(values) - known
    if unknown:
      raise FaultSpecError(f"unknown fault options {sorted(unknown)} in {text!r}; known: {sorted(known)}")
    try:
      common = {"skip": int(values.get("skip", 0)),
                "times": int(values["times"]) if "times" in values else None}
      if head.isdigit():
        retry_after = float(values["retry_after"]) if "retry_after" in values else None
        return cls.http_status(int(head), retry_after_s=retry_after, **common)
      if head == FaultKind.STALL.value:
        return cls.stall(float(values.get("stall", 30.0)), **common)
      if head == FaultKind.TRUNCATE.value:
        return cls.truncate(float(values.get("fraction", 0.5)), **common)
      if head == FaultKind.NOT_MEDIA.value:
        return cls.not_media(content_type=values.get("content_type"), **common)
    except ValueError as error:
      raise FaultSpecError(f"bad fault {text!r}: {error}") from None
    raise FaultSpecError(f"unknown fault kind {head!r} in {text!r}: use a status, stall, truncate or not_media")


@dataclasses.dataclass(frozen=True)
class RequestRecord:
  """One request the server answered.

  Attributes:
    time: when it arrived (time.monotonic()).
    method: "GET" or "HEAD".
    path: the served name, without the leading slash (URL-decoded).
    range_header: the Range header as received, or None.
    status: the status the server answered with.
    fault: the kind of fault injected into this request, or None.
    headers: the request headers as (name, value) pairs, in order.
  """

  time: float
  method: str
  path: str
  range_header: Optional[str]
  status: int
  fault: Optional[FaultKind]
  headers: tuple[tuple[str, str], ...] = ()

  def header(self, name: str) -> Optional[str]:
    """The first value of header `name` (case-insensitive), or None."""
    name = name.lower()
    return next((value for key, value in self.headers if key.lower() == name), None)


class _FaultState:
  """A fault plus how many requests it has seen (guarded by the server's lock)."""

  def __init__(self, fault: Fault):
    self.fault = fault
    self.seen = 0

  def applies_to_next(self) -> bool:
    """Counts one request and says whether the fault hits it."""
    self.seen += 1
    if self.seen <= self.fault.skip:
      return False
    return self.fault.times is None or self.seen - self.fault.skip <= self.fault.times


class MediaServer:
  """Serves the files in `root` at ``http://127.0.0.1:PORT/{name}``.

  Names are single path segments (no sub-directories); :meth:`alias` maps
  further names onto files, so one generated clip can stand in for many
  YouTube ids. Thread-safe: faults and the request log are guarded by a lock.

  Args:
    root: the directory to serve.
    host: the address to bind; loopback by default, and there is no reason to
      serve test media anywhere else.
    port: the port; 0 picks a free one (see :attr:`port`).
  """

  def __init__(self, root: str, host: str = "127.0.0.1", port: int = 0):
    if not os.path.isdir(root):
      raise NotADirectoryError(f"media server root {root!r} is not a directory")
    self.root = os.path.realpath(root)
    self._host = host
    self._requested_port = port
    self._lock = threading.Lock()
    self._faults: dict[str, _FaultState] = {}
    self._aliases: dict[str, str] = {}
    self._records: list[RequestRecord] = []
    self._stopping = threading.Event()
    self._httpd: Optional[http.server.ThreadingHTTPServer] = None
    self._thread: Optional[threading.Thread] = None

  # -- lifecycle -------------------------------------------------------------
  def start(self) -> "MediaServer":
    """Binds and serves in a background thread; returns self."""
    if self._httpd is not None:
      raise RuntimeError("media server already started")
    handler = type("_BoundHandler", (_MediaRequestHandler,), {"media_server": self})
    self._stopping.clear()
    self._httpd = _QuietThreadingHTTPServer((self._host, self._requested_port), handler)
    self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"media-server-{self.port}",
                                    daemon=True)
    self._thread.start()
    logger.debug("media server on %s serving %s", self.base_url, self.root)
    return self

  def stop(self) -> None:
    """Stops serving; stalled responses are released. Safe to call twice."""
    if self._httpd is None:
      return
    self._stopping.set()
    self._httpd.shutdown()
    self._httpd.drop_connections()
    self._httpd.server_close()
    if self._thread is not None:
      self._thread.join(timeout=5)
    self._httpd = None
    self._thread = None

  def __enter__(self) -> "MediaServer":
    return self.start()

  def __exit__(self, *exc_info) -> None:
    self.stop()

  @property
  def port(self) -> int:
    """The bound port (after start)."""
    if self._httpd is None:
      raise RuntimeError("media server is not started")
    return self._httpd.server_address[1]

  @property
  def base_url(self) -> str:
    """``http://HOST:PORT`` without a trailing slash."""
    return f"http://{self._host}:{self.port}"

  def url(self, name: str) -> str:
    """The URL of a served name."""
    return f"{self.base_url}/{urllib.parse.quote(name)}"

  def url_template(self, pattern: str = "{ytid}.mp4") -> str:
    """A downloader URL template on this server, e.g. ``http://127.0.0.1:P/{ytid}.mp4``."""
    return f"{self.base_url}/{pattern}"

  # -- content and faults ----------------------------------------------------
  def alias(self, name: str, target: str) -> None:
    """Serves the file `target` (a name in root) under `name` as well."""
    _check_segment(name)
    _check_segment(target)
    with self._lock:
      self._aliases[name] = target

  def add_file(self, source_path: str, name: Optional[str] = None) -> str:
    """Copies a file into root (as `name`, default its base name); returns the name."""
    name = name or os.path.basename(source_path)
    _check_segment(name)
    shutil.copyfile(source_path, os.path.join(self.root, name))
    return name

  def inject(self, name: str, fault: Fault) -> None:
    """Applies `fault` to requests for `name` (replacing any fault it had)."""
    _check_segment(name)
    with self._lock:
      self._faults[name] = _FaultState(fault)

  def clear_faults(self, name: Optional[str] = None) -> None:
    """Removes the fault of `name`, or every fault."""
    with self._lock:
      if name is None:
        self._faults.clear()
      else:
        self._faults.pop(name, None)

  # -- request log -------------------------------------------------------------
  def requests(self, name: Optional[str] = None) -> list[RequestRecord]:
    """The requests seen so far (for `name` only, if given), oldest first."""
    with self._lock:
      return [r for r in self._records if name is None or r.path == name]

  def request_count(self, name: Optional[str] = None, faulted: Optional[bool] = None) -> int:
    """How many requests were seen for `name` (all paths if None).

    Args:
      name: the path, or None for all.
      faulted: True counts only requests a fault was injected into, False only
        the others, None both.
    """
    return sum(1 for r in self.requests(name) if faulted is None or (r.fault is not None) == faulted)

  def reset_requests(self) -> None:
    """Forgets the request log (faults keep their own counts)."""
    with self._lock:
      self._records.clear()

  # -- used by the handler -----------------------------------------------------
  def _resolve(self, name: str) -> Optional[str]:
    with self._lock:
      target = self._aliases.get(name, name)
    path = os.path.realpath(os.path.join(self.root, target))
    # Files only, and never outside root (a symlink could point anywhere).
    if os.path.dirname(path) != self.root or not os.path.isfile(path):
      return None
    return path

  def _take_fault(self, name: str) -> Optional[Fault]:
    with self._lock:
      state = self._faults.get(name)
      if state is not None and state.applies_to_next():
        return state.fault
      return None

  def _record(self, record: RequestRecord) -> None:
    with self._lock:
      self._records.append(record)


class _QuietThreadingHTTPServer(http.server.ThreadingHTTPServer):
  """Logs clients hanging up instead of printing tracebacks, and can drop every open connection.

  Clients hanging up mid-response is normal here (yt-dlp's probe, ffmpeg's
  seeks, timeouts). Keep-alive connections would otherwise outlive stop() in
  their handler threads until the socket timeout.
  """

  daemon_threads = True

  def __init__(self, *args, **kwargs):
    self._open_connections: set = set()
    self._connections_lock = threading.Lock()
    super().__init__(*args, **kwargs)

  def process_request(self, request, client_address) -> None:
    with self._connections_lock:
      self._open_connections.add(request)
    super().process_request(request, client_address)

  def shutdown_request(self, request) -> None:
    with self._connections_lock:
      self._open_connections.discard(request)
    super().shutdown_request(request)

  def drop_connections(self) -> None:
    with self._connections_lock:
      connections = list(self._open_connections)
    for connection in connections:
      try:
        connection.shutdown(socket.SHUT_RDWR)
      except OSError:
        pass

  def handle_error(self, request, client_address) -> None:
    error = sys.exc_info()[1]
    if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
      logger.debug("client %s went away: %r", client_address, error)
    else:
      logger.warning("error serving %s", client_address, exc_info=True)


def _check_segment(name: str) -> None:
  if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
    raise ValueError(f"served names are single path segments, got {name!r}")


class _MediaRequestHandler(http.server.BaseHTTPRequestHandler):
  """Answers GET and HEAD for one file per path, with Range and faults."""

  media_server: MediaServer  # set on the bound subclass
  protocol_version = "HTTP/1.1"  # keep-alive, like real CDNs; ffmpeg reuses connections
  server_version = "MediaMirror/1.0"
  timeout = _CLIENT_SOCKET_TIMEOUT_S

  def do_GET(self) -> None:
    self._serve(send_body=True)

  def do_HEAD(self) -> None:
    self._serve(send_body=False)

  def log_message(self, format: str, *args) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
    logger.debug("%s %s", self.address_string(), format % args)

  # -- serving -------------------------------------------------------------------
  def _serve(self, send_body: bool) -> None:
    name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path.lstrip("/"))
    self._request_name = name
    self._request_range = self.headers.get("Range")
    self._request_fault = self.media_server._take_fault(name)
    self._recorded = False
    self._answer(name, self._request_range, self._request_fault, send_body)

  def send_response(self, code: int, message: Optional[str] = None) -> None:
    # Recorded when the status goes out, not when the response ends: a stalled
    # response must show up in the log while it stalls.
    if not getattr(self, "_recorded", True):
      self._recorded = True
      fault = self._request_fault
      self.media_server._record(RequestRecord(
          time=time.monotonic(), method=self.command, path=self._request_name, range_header=self._request_range,
          status=code, fault=fault.kind if fault else None, headers=tuple(self.headers.items())))
    super().send_response(code, message)

  def _answer(self, name: str, range_header: Optional[str], fault: Optional[Fault], send_body: bool) -> int:
    if fault is not None and fault.kind is FaultKind.HTTP_STATUS:
      headers = {}
      if fault.retry_after_s is not None:
        headers["Retry-After"] = str(int(-(-fault.retry_after_s // 1)))
      return self._send_text(fault.status, f"injected {fault.status}\n", send_body, headers)

    path = self.media_server._resolve(name)
    if path is None:
      return self._send_text(404, f"no such file: {name}\n", send_body)

    if fault is not None and fault.kind is FaultKind.NOT_MEDIA:
      content_type = fault.content_type or content_type_for(name)
      return self._send_bytes(200, fault.body, content_type, send_body)

    size = os.path.getsize(path)
    byte_range = _parse_range(range_header, size)
    if byte_range == "unsatisfiable":
      return self._send_text(416, "range not satisfiable\n", send_body, {"Content-Range": f"bytes */{size}"})
    first, last = byte_range if byte_range else (0, size - 1)
    length = last - first + 1
    status = 206 if byte_range else 200
    self.send_response(status)
    self.send_header("Content-Type", content_type_for(os.path.basename(path)))
    self.send_header("Accept-Ranges", "bytes")
    self.send_header("Content-Length", str(length))
    if byte_range:
      self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
    self.end_headers()
    if not send_body:
      return status

    if fault is not None and fault.kind is FaultKind.STALL:
      self.wfile.flush()
      self.media_server._stopping.wait(fault.stall_s)
      self._drop_connection()
      return status

    to_send = length if fault is None or fault.kind is not FaultKind.TRUNCATE else int(length * fault.fraction)
    try:
      with open(path, "rb") as media:
        media.seek(first)
        remaining = to_send
        while remaining > 0:
          chunk = media.read(min(_CHUNK_BYTES, remaining))
          if not chunk:
            break
          self.wfile.write(chunk)
          remaining -= len(chunk)
    except (BrokenPipeError, ConnectionResetError):
      # Clients close early all the time (yt-dlp's probe reads 512 bytes, ffmpeg seeks).
      self.close_connection = True
      return status
    if to_send < length:
      self._drop_connection()
    return status

  def _drop_connection(self) -> None:
    """Closes the connection so the client sees the body end early."""
    self.close_connection = True
    try:
      self.wfile.flush()
      self.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
      pass

  def _send_text(self, status: int, text: str, send_body: bool, headers: Optional[dict] = None) -> int:
    return self._send_bytes(status, text.encode(), "text/plain; charset=utf-8", send_body, headers)

  def _send_bytes(self, status: int, body: bytes, content_type: str, send_body: bool,
                  headers: Optional[dict] = None) -> int:
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
      self.send_header(key, value)
    self.end_headers()
    if send_body:
      try:
        self.wfile.write(body)
      except (BrokenPipeError, ConnectionResetError):
        self.close_connection = True
    return status


def _parse_range(header: Optional[str], size: int):
  """(first, last) inclusive for a single byte range; None to serve it all; or "unsatisfiable".

  Multiple ranges and malformed headers are served as a whole file, as RFC 9110
  allows a server that ignores Range to do.
  """
  if not header:
    return None
  match = _RANGE_PATTERN.match(header.strip())
  if not match:
    return None
  first_text, last_text = match.groups()
  if not first_text and not last_text:
    return None
  if not first_text:  # suffix range: the last N bytes
    suffix = int(last_text)
    if suffix == 0 or size == 0:
      return "unsatisfiable"
    return max(0, size - suffix), size - 1
  first = int(first_text)
  last = int(last_text) if last_text else size - 1
  if first >= size or last < first:
    return "unsatisfiable"
  return first, min(last, size - 1)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m testsupport.media_server",
      description="Serve a directory of media files over HTTP on 127.0.0.1, with Range support and "
      "optional injected faults, as a local stand-in for YouTube.",
  )
  parser.add_argument("directory", help="directory whose files are served at /NAME")
  parser.add_argument("--port", type=int, default=0, help="port to listen on (default 0: pick a free one)")
  parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
  parser.add_argument(
      "--fault", action="append", default=[], metavar="NAME=SPEC",
      help="inject a fault into requests for NAME; SPEC is a status (404, 429,retry_after=1, 503,times=2), "
      "stall[,stall=S], truncate[,fraction=F] or not_media; may repeat")
  parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")

  server = MediaServer(args.directory, host=args.host, port=args.port)
  for item in args.fault:
    name, sep, spec = item.partition("=")
    if not sep:
      parser.error(f"--fault takes NAME=SPEC, got {item!r}")
    try:
      server.inject(name, Fault.parse(spec))
    except (FaultSpecError, ValueError) as error:
      parser.error(str(error))
  with server:
    names = sorted(os.listdir(server.root))
    print(f"serving {len(names)} files from {server.root} at {server.base_url}/NAME (Ctrl-C stops)", flush=True)
    try:
      while True:
        time.sleep(3600)
    except KeyboardInterrupt:
      print(f"stopped after {server.request_count()} requests")


if __name__ == "__main__":
  main()
