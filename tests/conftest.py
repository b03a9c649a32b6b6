"""Fixtures every part of the suite may use."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from testsupport import gcs_emulator
from testsupport.gcs_emulator import GcsEmulator

# etils decides once per process, at its first gs:// path, whether TensorFlow's
# GCS client serves gs:// (it cannot reach the emulator); the suite's answer is
# no, from the start, whichever test touches gs:// first.
os.environ[gcs_emulator.EPATH_ENV_VAR] = "false"


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsEmulator]:
  """A GCS emulator on 127.0.0.1 with one bucket; gs:// paths in this process and its children reach it."""
  with GcsEmulator(bucket="mbt-test") as emulator:
    yield emulator
