"""Fixtures every part of the suite may use."""

from __future__ import annotations

from typing import Iterator

import pytest

from testsupport.gcs_emulator import GcsEmulator


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsEmulator]:
  """A GCS emulator on 127.0.0.1 with one bucket; gs:// paths in this process and its children reach it."""
  with GcsEmulator(bucket="mbt-test") as emulator:
    yield emulator
