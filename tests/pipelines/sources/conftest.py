"""Shared fixtures: where the annotation samples and the real files are."""

import pathlib

import pytest

from pipelines.sources import audioset, epic_kitchens, vggsound

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
SAMPLES = REPO_ROOT / "tests" / "data" / "annotations"
# CI lays shared/ beside the checkout; never an absolute machine path.
REAL_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def samples() -> pathlib.Path:
  return SAMPLES


@pytest.fixture(scope="session")
def audioset_labels():
  return audioset.load_audioset_label_map(SAMPLES / "audioset" / "class_labels_indices.csv")


@pytest.fixture(scope="session")
def vggsound_labels():
  return vggsound.load_vggsound_label_map(SAMPLES / "vggsound" / "stat.csv")


@pytest.fixture(scope="session")
def epic_verbs():
  return epic_kitchens.load_epic_verb_classes(SAMPLES / "epic_kitchens" / "EPIC_100_verb_classes.csv")


@pytest.fixture(scope="session")
def epic_nouns():
  return epic_kitchens.load_epic_noun_classes(SAMPLES / "epic_kitchens" / "EPIC_100_noun_classes.csv")


@pytest.fixture(scope="session")
def real_data() -> pathlib.Path:
  """shared/data beside the repository root; skips the test where it is absent."""
  if not REAL_DATA.is_dir():
    pytest.skip(f"real annotation files not found at {REAL_DATA}")
  return REAL_DATA
