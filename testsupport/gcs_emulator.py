"""A Google Cloud Storage emulator on 127.0.0.1, for gs:// paths without the network.

Runs ``gcp-storage-emulator`` (from PyPI, the test extra) in memory and points
at it every client that can be pointed elsewhere than the real endpoint:

* ``STORAGE_EMULATOR_HOST``: the Google Cloud Storage client, under Beam's
  ``FileSystems`` (and so ``shared.files``), and gcsfs;
* ``TENSORSTORE_GCS_HTTP_URL``: TensorStore, where orbax writes arrays;
* ``EPATH_USE_TF=false``: etils' paths, where orbax writes its metadata, take
  gcsfs instead of TensorFlow's GCS client. etils reads it once per process,
  at its first gs:// path: a process that touched gs:// before the emulator
  started must have set it already (the test suite sets it in conftest.py).

TensorFlow's own GCS client (``tf.io.gfile``, ``tf.data`` readers, the
summary writer) has no such setting: it always goes to the real endpoint.
Beam's client connects anonymously, as the emulator takes no credentials
(:func:`configure_beam_without_credentials`); child processes inherit the
environment and call that function themselves.

The emulator runs in a process of its own (``python -m
testsupport.gcs_emulator``) with one thing added that real GCS does and the
emulator does not: a media download says the object's generation in an
``x-goog-generation`` header. TensorStore takes a read's generation from it
and writes orbax's OCDBT manifest on the condition that it is unchanged;
without the header that condition is malformed and the checkpoint fails.

    with GcsEmulator(bucket="mbt") as emulator:
      files.write_bytes("gs://mbt/a/b", b"...")
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Optional

ENV_VAR = "STORAGE_EMULATOR_HOST"
TENSORSTORE_ENV_VAR = "TENSORSTORE_GCS_HTTP_URL"
EPATH_ENV_VAR = "EPATH_USE_TF"


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
    self._previous_env: dict[str, Optional[str]] = {}

  def __enter__(self) -> "GcsEmulator":
    try:
      import gcp_storage_emulator  # noqa: F401  (only whether it is installed)
    except ImportError:
      raise EmulatorError("gcp-storage-emulator is not installed: python -m pip install -e '.[test]'") from None
    port = _free_port()
    self._process = subprocess.Popen(
        [sys.executable, "-m", "testsupport.gcs_emulator", f"--port={port}", f"--bucket={self.bucket}"],
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
    settings = {ENV_VAR: self.host, TENSORSTORE_ENV_VAR: self.host, EPATH_ENV_VAR: "false"}
    self._previous_env = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
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
    for name, previous in self._previous_env.items():
      if previous is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = previous
    self._previous_env = {}

  def url(self, *parts: str) -> str:
    """gs://BUCKET/parts..."""
    return "/".join([f"gs://{self.bucket}", *parts])


def _serve(port: int, bucket: str) -> None:
  """Runs the emulator in memory on 127.0.0.1:`port`, downloads saying their generation as GCS does."""
  from gcp_storage_emulator.handlers import objects

  def download_with_generation(request, response, storage, *args, **kwargs):
    download(request, response, storage, *args, **kwargs)
    try:
      found = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
    except Exception:  # pylint: disable=broad-except  (not found: the response says so already)
      return
    response["x-goog-generation"] = str(found["generation"])
    response["x-goog-metageneration"] = str(found.get("metageneration", "1"))

  download = objects.download
  objects.download = download_with_generation
  from gcp_storage_emulator.server import create_server  # its routes take objects.download as it is now

  create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket).run()


if __name__ == "__main__":
  import argparse

  parser = argparse.ArgumentParser(description="A GCS emulator on 127.0.0.1 (gcp-storage-emulator, in memory).")
  parser.add_argument("--port", type=int, required=True)
  parser.add_argument("--bucket", required=True, help="the bucket it creates")
  arguments = parser.parse_args()
  _serve(arguments.port, arguments.bucket)
