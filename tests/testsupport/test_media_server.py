"""The local media mirror: Range, content types, faults, request log, command line."""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from testsupport.media_server import Fault, FaultKind, FaultSpecError, MediaServer, content_type_for

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAYLOAD = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


@pytest.fixture
def server(tmp_path):
  (tmp_path / "clip.mp4").write_bytes(PAYLOAD)
  (tmp_path / "clip.webm").write_bytes(PAYLOAD[:100])
  with MediaServer(str(tmp_path)) as running:
    yield running


def fetch(server: MediaServer, name: str, headers=None, method: str = "GET", timeout: float = 5.0):
  """(status, headers, body) of one request on a fresh connection."""
  connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
  try:
    connection.request(method, "/" + name, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    return response.status, response.headers, body
  finally:
    connection.close()


def test_whole_file(server):
  status, headers, body = fetch(server, "clip.mp4")
  assert (status, body) == (200, PAYLOAD)
  assert headers["Content-Type"] == "video/mp4"
  assert headers["Accept-Ranges"] == "bytes"
  assert headers["Content-Length"] == str(len(PAYLOAD))


@pytest.mark.parametrize("range_header, first, last", [
    ("bytes=0-99", 0, 99), ("bytes=100-", 100, len(PAYLOAD) - 1), ("bytes=-50", len(PAYLOAD) - 50, len(PAYLOAD) - 1),
    ("bytes=10000-99999", 10000, len(PAYLOAD) - 1),
])
def test_ranges(server, range_header, first, last):
  status, headers, body = fetch(server, "clip.mp4", {"Range": range_header})
  assert status == 206
  assert body == PAYLOAD[first:last + 1]
  assert headers["Content-Range"] == f"bytes {first}-{last}/{len(PAYLOAD)}"
  assert headers["Content-Length"] == str(last - first + 1)


def test_unsatisfiable_and_ignored_ranges(server):
  status, headers, _ = fetch(server, "clip.mp4", {"Range": f"bytes={len(PAYLOAD)}-"})
  assert status == 416 and headers["Content-Range"] == f"bytes */{len(PAYLOAD)}"
  status, _, body = fetch(server, "clip.mp4", {"Range": "bytes=0-1,5-6"})  # multi-range: served whole
  assert (status, body) == (200, PAYLOAD)


def test_head_content_types_missing_files_and_traversal(server):
  status, headers, body = fetch(server, "clip.webm", method="HEAD")
  assert (status, headers["Content-Type"], headers["Content-Length"], body) == (200, "video/webm", "100", b"")
  assert fetch(server, "missing.mp4")[0] == 404
  assert fetch(server, "../../etc/passwd")[0] == 404
  assert fetch(server, "%2e%2e%2fetc%2fpasswd")[0] == 404
  assert content_type_for("a.mkv") == "video/x-matroska" and content_type_for("a.m4a") == "audio/mp4"


def test_aliases_serve_one_file_under_many_names(server):
  server.alias("dQw4w9WgXcQ.mp4", "clip.mp4")
  assert fetch(server, "dQw4w9WgXcQ.mp4")[2] == PAYLOAD
  with pytest.raises(ValueError):
    server.alias("a/b.mp4", "clip.mp4")


def test_status_fault_with_retry_after_then_recovery(server):
  server.inject("clip.mp4", Fault.http_status(429, retry_after_s=1.5, times=2))
  for _ in range(2):
    status, headers, _ = fetch(server, "clip.mp4")
    assert status == 429 and headers["Retry-After"] == "2"  # whole seconds, rounded up
  assert fetch(server, "clip.mp4")[0] == 200
  assert server.request_count("clip.mp4") == 3
  assert server.request_count("clip.mp4", faulted=True) == 2
  assert [r.status for r in server.requests("clip.mp4")] == [429, 429, 200]


@pytest.mark.parametrize("status", [403, 404, 410, 500, 503])
def test_status_faults(server, status):
  server.inject("clip.mp4", Fault.http_status(status))
  with pytest.raises(urllib.error.HTTPError) as raised:
    urllib.request.urlopen(server.url("clip.mp4"), timeout=5)
  assert raised.value.code == status


def test_skip_lets_early_requests_through(server):
  server.inject("clip.mp4", Fault.http_status(503, skip=1, times=1))
  assert [fetch(server, "clip.mp4")[0] for _ in range(3)] == [200, 503, 200]


def test_truncated_body(server):
  server.inject("clip.mp4", Fault.truncate(0.25))
  with pytest.raises(http.client.IncompleteRead) as raised:
    fetch(server, "clip.mp4")
  assert len(raised.value.partial) == len(PAYLOAD) // 4
  # Ranges are truncated too: a seek does not escape the fault.
  with pytest.raises(http.client.IncompleteRead):
    fetch(server, "clip.mp4", {"Range": "bytes=1000-1999"})


def test_stalled_response_sends_headers_then_nothing(server):
  server.inject("clip.mp4", Fault.stall(stall_s=30))
  connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=0.5)
  connection.request("GET", "/clip.mp4")
  response = connection.getresponse()  # headers arrive...
  assert response.status == 200 and response.headers["Content-Length"] == str(len(PAYLOAD))
  with pytest.raises(socket.timeout):
    response.read()  # ...the body does not
  connection.close()
  # The stalled request is in the log while it stalls.
  assert server.requests("clip.mp4")[0].fault is FaultKind.STALL


def test_stop_releases_stalled_responses(tmp_path):
  (tmp_path / "clip.mp4").write_bytes(PAYLOAD)
  server = MediaServer(str(tmp_path)).start()
  server.inject("clip.mp4", Fault.stall(stall_s=60))
  connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
  connection.request("GET", "/clip.mp4")
  response = connection.getresponse()
  started = time.monotonic()
  server.stop()
  with pytest.raises(http.client.IncompleteRead) as raised:
    response.read()  # the connection closes instead of being held for 60 s
  assert raised.value.partial == b""
  assert time.monotonic() - started < 5
  server.stop()  # twice is fine


def test_not_media_body(server):
  server.inject("clip.mp4", Fault.not_media())
  status, headers, body = fetch(server, "clip.mp4")
  assert status == 200 and headers["Content-Type"] == "video/mp4" and b"not a media file" in body
  server.inject("clip.mp4", Fault.not_media(body=b"<html/>", content_type="text/html"))
  assert fetch(server, "clip.mp4")[1]["Content-Type"] == "text/html"


def test_counts_are_exact_under_concurrency(server):
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    statuses = list(pool.map(lambda _: fetch(server, "clip.mp4", {"Range": "bytes=0-9"})[0], range(64)))
  assert statuses == [206] * 64
  assert server.request_count("clip.mp4") == 64
  assert all(r.header("range") == "bytes=0-9" for r in server.requests("clip.mp4"))
  server.reset_requests()
  assert server.request_count() == 0


@pytest.mark.parametrize("text, expected", [
    ("404", Fault.http_status(404)),
    ("429,retry_after=1", Fault.http_status(429, retry_after_s=1.0)),
    ("503,times=2", Fault.http_status(503, times=2)),
    ("503, skip=1, times=1", Fault.http_status(503, skip=1, times=1)),
    ("stall,stall=10", Fault.stall(10.0)),
    ("truncate,fraction=0.3", Fault.truncate(0.3)),
    ("not_media,content_type=text/html", Fault.not_media(content_type="text/html")),
])
def test_fault_parse(text, expected):
  assert Fault.parse(text) == expected


@pytest.mark.parametrize("text", ["", "teapot", "200", "404,retry=1", "404,times", "truncate,fraction=2"])
def test_fault_parse_rejects(text):
  with pytest.raises(FaultSpecError):
    Fault.parse(text)


def test_command_line(tmp_path):
  (tmp_path / "clip.mp4").write_bytes(PAYLOAD)
  helped = subprocess.run([sys.executable, "-m", "testsupport.media_server", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
  assert helped.returncode == 0 and "--port" in helped.stdout and "--fault" in helped.stdout

  process = subprocess.Popen([sys.executable, "-m", "testsupport.media_server", str(tmp_path), "--port", "0",
                              "--fault", "gone.mp4=410"], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
  try:
    banner = process.stdout.readline()
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)", banner).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/clip.mp4", timeout=5) as response:
      assert response.read() == PAYLOAD
    with pytest.raises(urllib.error.HTTPError) as raised:
      urllib.request.urlopen(f"http://127.0.0.1:{port}/gone.mp4", timeout=5)
    assert raised.value.code == 410
  finally:
    process.terminate()
    process.wait(timeout=10)
