"""The failure vocabulary: one class per reason, named once, and WORKSPACE.md's table is the vocabulary's."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

from shared import failures
from shared.failures import FailureClass, Reason

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
NON_TEST_PACKAGES = ("shared", "pipelines", "trainer", "demo", "testsupport", "benchmarks")
# String constants equal to a reason's name that are something else.
NOT_REASONS = {
    ("pipelines/download/classify.py", "timeout"),  # a word matched in error messages
    ("pipelines/download/downloader.py", "proxy"),  # yt-dlp's option
    ("testsupport/media_server.py", "not_media"),  # a kind of injected fault
}


def test_every_reason_has_a_class_and_a_meaning():
  assert {reason.failure_class for reason in Reason} == set(FailureClass)
  assert len({reason.value for reason in Reason}) == len(Reason)
  for member in [*FailureClass, *Reason]:
    assert member.meaning, member
  assert Reason.HTTP_NOT_FOUND.qualified == "permanent/http_404"
  assert Reason.INVALID_SPAN.failure_class is FailureClass.PERMANENT  # one class, wherever it is found


def test_workspace_failure_table_is_the_vocabulary():
  workspace = (REPO_ROOT / "WORKSPACE.md").read_text(encoding="utf-8")
  assert failures.markdown_tables() in workspace, (
      "WORKSPACE.md's failure tables differ from shared/failures.py: paste `python -m shared.failures` there")


def test_command_line_prints_the_tables():
  done = subprocess.run([sys.executable, "-m", "shared.failures"], cwd=REPO_ROOT, capture_output=True, text=True,
                        check=True)
  assert done.stdout == failures.markdown_tables()


def _string_constants(path: pathlib.Path):
  """(line, value) of every string constant in a module that is not a docstring."""
  tree = ast.parse(path.read_text(encoding="utf-8"))
  docstrings = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
      first = node.body[0]
      if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        docstrings.add(id(first.value))
  for node in ast.walk(tree):
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
      yield node.lineno, node.value


@pytest.mark.parametrize("package", NON_TEST_PACKAGES)
def test_no_failure_reason_is_spelled_outside_the_vocabulary(package):
  names = {c.value for c in FailureClass} | {r.value for r in Reason} | {r.qualified for r in Reason}
  found = []
  for path in sorted((REPO_ROOT / package).rglob("*.py")):
    relative = path.relative_to(REPO_ROOT).as_posix()
    if relative == "shared/failures.py":
      continue
    found += [f"{relative}:{line}: {value!r}" for line, value in _string_constants(path)
              if value in names and (relative, value) not in NOT_REASONS]
  assert not found, "use shared.failures instead of these literals:\n" + "\n".join(found)
