"""Today's YouTube: the JS runtime and challenge-solver scripts are found, and yt-dlp's knobs reach yt-dlp."""

from __future__ import annotations

import json
import os
import pathlib

import pytest

from pipelines.download import youtube
from pipelines.download.downloader import ClipDownloader, DownloadConfig
from pipelines.download.results import DownloadRequest
from shared.failures import FailureClass, Reason

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
PLUGIN_DIR = str(REPO_ROOT / "testsupport" / "ytdlp_plugins")


def test_the_downloaders_ytdlp_finds_a_js_runtime_and_the_challenge_solver_scripts():
  # What `yt-dlp -v` reports as "JS runtimes: deno-..." and the EJS scripts, asked offline.
  support = youtube.check_youtube_support()
  assert support.js_runtimes.get("deno") == "2.9.8", support.summary()
  assert support.challenge_solvers.get("deno", "").startswith("python package 0.8"), support.summary()
  assert support.problems() == []


def test_youtube_knobs_reach_ytdlp_in_its_own_syntax(tmp_path):
  config = DownloadConfig(output_dir=str(tmp_path), extractor_args=("youtube:player_client=default,mweb;po_token=mweb.gvs+T",),
                          js_runtimes=("node",))
  params = ClipDownloader(config)._ytdlp_params(str(tmp_path), str(tmp_path / "log"), 1.0, 3.0)
  assert params["extractor_args"] == {"youtube": {"player_client": ["default", "mweb"], "po_token": ["mweb.gvs+T"]}}
  assert set(params["js_runtimes"]) == {"deno", "node"}


@pytest.mark.parametrize("field, value, named", [
    ("js_runtimes", ("nosuch",), "'nosuch'"),
    ("extractor_args", ("no-colon",), "no-colon"),
    ("plugin_dirs", ("/nonexistent/plugins",), "/nonexistent/plugins"),
])
def test_bad_knobs_are_refused_before_anything_is_fetched(tmp_path, field, value, named):
  with pytest.raises((youtube.YoutubeOptionError, FileNotFoundError), match=named):
    DownloadConfig(output_dir=str(tmp_path), **{field: value})


def _player(server, ytid: str, status: dict, **fields) -> None:
  with open(os.path.join(server.root, f"{ytid}.player.json"), "w", encoding="utf-8") as f:
    json.dump({"playabilityStatus": status, **fields}, f)


def test_a_plugin_from_plugin_dirs_resolves_watch_pages_with_youtubes_refusals(tmp_path, server, serve_as):
  playable, bot_checked = serve_as("long.mp4"), serve_as("long.mp4")
  _player(server, playable, {"status": "OK"})
  _player(server, bot_checked, {"status": "LOGIN_REQUIRED", "reason": "Sign in to confirm you\u2019re not a bot",
                                "subreason": "This helps protect our community. Learn more"})
  downloader = ClipDownloader(DownloadConfig(output_dir=str(tmp_path), url_template=server.url_template("watch?v={ytid}"),
                                             plugin_dirs=(PLUGIN_DIR,), socket_timeout_s=2.0))
  ok = downloader.download(DownloadRequest(clip_id=f"yt_{playable}_000002000", source_id=playable, start_s=2.0,
                                           end_s=4.0))
  assert ok.ok, ok
  refused = downloader.download(DownloadRequest(clip_id=f"yt_{bot_checked}_000002000", source_id=bot_checked,
                                                start_s=2.0, end_s=4.0))
  assert (refused.failure_class, refused.reason, refused.attempts) == (FailureClass.NEEDS_COOKIES, Reason.BOT_CHECK, 1)
  assert server.request_count(f"{bot_checked}.mp4") == 0  # refused at the watch page, as YouTube does


def test_formats_hidden_by_an_unsolved_challenge_are_not_the_clips_fault(tmp_path, server, serve_as):
  ytid = serve_as("long.mp4")
  _player(server, ytid, {"status": "OK"}, challenge="unsolved")
  downloader = ClipDownloader(DownloadConfig(output_dir=str(tmp_path), url_template=server.url_template("watch?v={ytid}"),
                                             plugin_dirs=(PLUGIN_DIR,), socket_timeout_s=2.0))
  result = downloader.download(DownloadRequest(clip_id=f"yt_{ytid}_000002000", source_id=ytid, start_s=2.0, end_s=4.0))
  assert (result.failure_class, result.reason) == (FailureClass.TRANSIENT, Reason.CHALLENGE_UNSOLVED)
