"""How the trainer's command-line entry points start: absl's app.run, with --help exiting 0.

absl prints the usage for --help and then exits with status 1, which reads as
a failure in scripts and CI; here asking for help succeeds.
"""

from __future__ import annotations

import sys
from typing import Callable

from absl import app

_HELP_FLAGS = ("-h", "--help", "--helpshort")


def run(main: Callable[[list[str]], None]) -> None:
  """app.run(main), except that -h, --help and --helpshort print the usage and exit 0."""
  if any(arg in _HELP_FLAGS for arg in sys.argv[1:]):
    app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
  app.run(main)
