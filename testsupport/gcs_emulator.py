"""A Google Cloud Storage emulator on 127.0.0.1, for gs:// paths without the network.

Runs ``gcp-storage-emulator`` (from PyPI, the test extra) in memory and points
the Google Cloud Storage client at it through ``STORAGE_EMULATOR_HOST``, which
Beam's ``FileSystems`` honours (``tf.io.gfile`` does not: it always goes to the
real endpoint). Beam's client connects anonymously, as the emulator takes no
credentials (:func:`configure_beam_without_credentials`); child processes
inherit the emulator's address and call that function themselves.

    with GcsEmulator(bucket="mbt") as emulator:
      files.write_bytes("gs://mbt/a/b", b"...")
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Optional

ENV_VAR = "STORAGE_EMULATOR_HOST"


class EmulatorError(RuntimeError):
  """The emulator is not installed or did not start."""


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def configure_beam_without_credentials() -> None:
  """Beam's GCS client in this process: anonymous, as the emulator wants.

  Beam looks for Google credentials before its first GCS request and, finding
  none, retries with backoff for about 25 s before it connects anonymously;
  it caches the outcome per process. This records "no credentials" up front.
  Call it in every process that reaches the emulator (an in-memory Beam
  pipeline runs in the caller's process).
  """
  from apache_beam.internal.gcp import auth

  with auth._Credentials._credentials_lock:  # pylint: disable=protected-access
    auth._Credentials._credentials = None  # pylint: disable=protected-access
    auth._Credentials._credentials_init = True  # pylint: disable=protected-access


class GcsEmulator:
  """The emulator process; a context manager that starts and stops it.

  Attributes:
    bucket: the bucket it creates.
    host: its http://127.0.0.1:PORT address.
  """

  def __init__(self, bucket: str = "mbt-test", start_timeout_s: float = 60.0):
    self.bucket = bucket
    self.host: Optional[str] = None
    self._start_timeout_s = start_timeout_s
    self._process: Optional[subprocess.Popen] = None
    self._previous_env: Optional[str] = None

  def __enter__(self) -> "GcsEmulator":
    executable = shutil.which("gcp-storage-emulator", path=os.path.dirname(sys.executable) + os.pathsep +
                              os.environ.get("PATH", ""))
    if executable is None:
      raise EmulatorError("gcp-storage-emulator is not installed: python -m pip install -e '.[test]'")
    port = _free_port()
    self._process = subprocess.Popen(
        [executable, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory", f"--default-bucket={self.bucket}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + self._start_timeout_s
    while True:
      try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
          break
      except OSError:
        if self._process.poll() is not None or time.monotonic() > deadline:
          self.__exit__(None, None, None)
          raise EmulatorError(f"gcp-storage-emulator did not start on port {port}") from None
        time.sleep(0.1)
    self.host = f"http://127.0.0.1:{port}"
    self._previous_env = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = self.host
    configure_beam_without_credentials()
    return self

  def __exit__(self, *exc_info) -> None:
    if self._process is not None:
      self._process.terminate()
      try:
        self._process.wait(timeout=10)
      except subprocess.TimeoutExpired:
        self._process.kill()
      self._process = None
    if self.host is not None:
      if self._previous_env is None:
        os.environ.pop(ENV_VAR, None)
      else:
        os.environ[ENV_VAR] = self._previous_env

  def url(self, *parts: str) -> str:
    """gs://BUCKET/parts..."""
    return "/".join([f"gs://{self.bucket}", *parts])
