"""A build whose machine is refused (a wall of 403s, bot checks) stops, records no clip as gone, and says what to fix."""

from __future__ import annotations

import json
import os

import pytest

from pipelines import build_vggsound
from pipelines.download.ledger import read_ledger
from shared.manifest import read_manifest
from testsupport.media_server import Fault

from .conftest import FAST_BUILD_ARGS, IN_MEMORY, REPO_ROOT, write_lines

NUM_CLIPS = 8
THRESHOLD = 3
PLUGIN_DIR = str(REPO_ROOT / "testsupport" / "ytdlp_plugins")


def _watch_page(media_server, ytid: str, status: dict) -> None:
  with open(os.path.join(media_server.root, f"{ytid}.player.json"), "w", encoding="utf-8") as f:
    json.dump({"playabilityStatus": status}, f)


@pytest.mark.parametrize("wall", ["http_403", "bot_check"])
def test_a_build_facing_a_wall_stops_and_records_no_clip_as_gone(tmp_path, serve, media_server, url_template,
                                                                 capsys, wall):
  template = url_template
  extra = []
  if wall == "http_403":
    ytids = [serve("wall", "av.mp4", Fault.http_status(403)) for _ in range(NUM_CLIPS)]
    trigger = "permanent/http_403"
  else:  # YouTube's watch page refuses, as the local stand-in for it does
    ytids = [serve("botw", "av.mp4") for _ in range(NUM_CLIPS)]
    for ytid in ytids:
      _watch_page(media_server, ytid, {"status": "LOGIN_REQUIRED", "reason": "Sign in to confirm you\u2019re not a bot"})
    template = url_template.replace("{ytid}.mp4", "watch?v={ytid}")
    extra = ["--plugin_dirs", PLUGIN_DIR]
    trigger = "needs_cookies/bot_check"
  file_list = write_lines(tmp_path / "list.csv", [f"{ytid}_000001.mp4,dog barking" for ytid in ytids])
  output_dir = tmp_path / "build"
  argv = ["--file_list", file_list, "--output_dir", str(output_dir), "--url_template", template,
          f"--breaker_threshold={THRESHOLD}", *extra, *FAST_BUILD_ARGS, IN_MEMORY]

  assert build_vggsound.main(argv) == 2
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert error.startswith(f"error: downloads stopped after runs of {trigger}: ")
  assert f"{NUM_CLIPS} clips are recorded as transient/systemic, none as gone" in error
  assert f"--previous_build {output_dir}" in error
  # Every clip is accounted for, none as gone; the machine stopped asking after the run.
  manifest = read_manifest(str(output_dir))
  assert manifest.counts.failed_by_reason == {"transient/systemic": NUM_CLIPS}
  ledger = read_ledger(str(output_dir / "ledger"))
  assert {(r.reason_class, r.reason) for r in ledger.records.values()} == {("transient", "systemic")}
  asked = [media_server.request_count(f"{ytid}.mp4") + media_server.request_count(f"{ytid}.player.json")
           for ytid in ytids]
  assert sum(1 for n in asked if n) == THRESHOLD
  # Re-running the finished build says the same, and changes nothing.
  assert build_vggsound.main(argv) == 2
  assert "downloads stopped after runs of" in capsys.readouterr().err
