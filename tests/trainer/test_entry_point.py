"""The trainer's command lines: --help succeeds and shows the flags; a missing flag still fails."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["trainer.train", "trainer.evaluate", "trainer.predict", "trainer.import_scenic"])
def test_help_exits_zero_with_the_usage(module, tmp_path):
  finished = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
  assert finished.returncode == 0, finished.stderr[-2000:]
  assert f"python -m {module}" in finished.stdout and "--config" in finished.stdout


def test_a_missing_required_flag_still_fails(tmp_path):
  finished = subprocess.run([sys.executable, "-m", "trainer.evaluate", "--workdir", "run"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
  assert finished.returncode == 1 and "--config" in finished.stderr
