"""Every build entry point documents itself and the Beam options it passes through."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines import build_audioset, build_epic_kitchens, build_vggsound

from .conftest import REPO_ROOT

ENTRY_POINTS = {"build_vggsound": build_vggsound, "build_audioset": build_audioset,
                "build_epic_kitchens": build_epic_kitchens}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_help_exits_zero_and_names_the_beam_passthrough(name, capsys):
  with pytest.raises(SystemExit) as exit_info:
    ENTRY_POINTS[name].main(["--help"])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  assert f"python -m pipelines.{name}" in text
  assert "Any Apache Beam pipeline option passes through" in text
  assert "--runner=DataflowRunner" in text and "--sdk_container_image" in text
  assert "--output_dir" in text and "--previous_build" in text and "--max_span_seconds" in text


def test_help_as_a_command():
  # The real `python -m` entry, in a process of its own.
  done = subprocess.run([sys.executable, "-m", "pipelines.build_epic_kitchens", "--help"], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  assert "Any Apache Beam pipeline option passes through" in done.stdout
  assert "--videos_dir" in done.stdout
