"""Ids, URLs, confined paths and credential scrubbing."""

from __future__ import annotations

import logging
import os

import pytest

from pipelines.download.identifiers import (InvalidUrlTemplateError, InvalidYoutubeIdError, UrlTemplate,
                                            validate_youtube_id)
from pipelines.download.output_paths import UnsafePathError, check_clip_id, clip_file_name, confined_path
from pipelines.download.scrub import MASK, Scrubber, ScrubbingLogger, cookie_file_secrets, proxy_secrets


@pytest.mark.parametrize("ytid", ["--4gqARaEJE", "-4gqARaEJE0", "dQw4w9WgXcQ", "___________", "a-b_c-d_e-f"])
def test_valid_youtube_ids(ytid):
  assert validate_youtube_id(ytid) == ytid


@pytest.mark.parametrize("ytid", ["", "short", "dQw4w9WgXcQQ", "dQw4w9WgXc\n", "dQw4w9WgXcQ\n", "dQw4w9WgX/Q",
                                  "../../../..", "dQw4w9WgX Q", "dQw4w9WgX%Q", None, 12345678901])
def test_invalid_youtube_ids(ytid):
  with pytest.raises(InvalidYoutubeIdError):
    validate_youtube_id(ytid)


def test_url_template_always_gives_a_url():
  assert UrlTemplate().url_for("-4gqARaEJE0") == "https://www.youtube.com/watch?v=-4gqARaEJE0"
  mirror = UrlTemplate("http://127.0.0.1:8000/{ytid}.mp4")
  assert mirror.url_for("--version00") == "http://127.0.0.1:8000/--version00.mp4"
  with pytest.raises(InvalidYoutubeIdError):
    mirror.url_for("../secrets")


@pytest.mark.parametrize("template", ["{ytid}", "/local/{ytid}.mp4", "file:///tmp/{ytid}.mp4",
                                      "http://host/{ytid}/{start}", "http://host/x.mp4", "http://{ytid}{ytid}"])
def test_bad_url_templates(template):
  with pytest.raises(InvalidUrlTemplateError):
    UrlTemplate(template)


@pytest.mark.parametrize("clip_id", ["yt_--4gqARaEJE_000030000", "P01_11_0", "clip.v2", "_x"])
def test_safe_clip_ids(clip_id):
  assert check_clip_id(clip_id) == clip_id


@pytest.mark.parametrize("clip_id", ["", "..", ".hidden", "-rf", "a/b", "a\\b", "..x", "x..", "a b", "a\x00b",
                                     "x" * 201])
def test_unsafe_clip_ids(clip_id):
  with pytest.raises(UnsafePathError):
    check_clip_id(clip_id)


def test_confined_path(tmp_path):
  root = tmp_path / "out"
  root.mkdir()
  assert confined_path(str(root), "a.mp4") == os.path.join(os.path.realpath(root), "a.mp4")
  for name in ("..", ".", "../a.mp4", "sub/a.mp4", ""):
    with pytest.raises(UnsafePathError):
      confined_path(str(root), name)
  os.symlink(tmp_path / "elsewhere.mp4", root / "link.mp4")
  with pytest.raises(UnsafePathError, match="outside"):
    confined_path(str(root), "link.mp4")
  with pytest.raises(UnsafePathError):
    clip_file_name("ok", "mp4/../x")


def test_scrubber_masks_registered_secrets_in_every_form():
  scrub = Scrubber(["s3cr3t/pass word", "ab"])  # "ab" is too short to be a secret
  text = "p=s3cr3t/pass word q=s3cr3t%2Fpass%20word r=s3cr3t%2Fpass+word about"
  assert scrub(text) == f"p={MASK} q={MASK} r={MASK} about"


def test_scrubber_masks_credential_shapes_it_was_not_told_about():
  scrub = Scrubber()
  assert scrub("Proxy map: {'all': 'http://bob:hunter2@10.0.0.1:3128'}") == (
      f"Proxy map: {{'all': 'http://{MASK}@10.0.0.1:3128'}}")
  assert scrub("socks5://user@proxy:1080") == f"socks5://{MASK}@proxy:1080"
  assert scrub("GET /x\r\nCookie: SID=abc; HSID=def\r\nHost: y") == f"GET /x\r\nCookie: {MASK}\r\nHost: y"
  assert scrub("ffmpeg -y -cookies 'SID=abc; path=/;' -i http://x") == f"ffmpeg -y -cookies {MASK} -i http://x"
  assert scrub("https://www.youtube.com/watch?v=abc") == "https://www.youtube.com/watch?v=abc"


def test_secrets_from_proxy_and_cookie_file(tmp_path):
  assert set(proxy_secrets("http://al%40ice:p%3Ass@host:1")) >= {"al%40ice", "al@ice", "p%3Ass", "p:ss"}
  assert proxy_secrets("host:3128") == []
  cookies = tmp_path / "cookies.txt"
  cookies.write_text("# Netscape HTTP Cookie File\n"
                     ".youtube.com\tTRUE\t/\tTRUE\t0\tSID\tsessionvalue123\n"
                     "#HttpOnly_.youtube.com\tTRUE\t/\tTRUE\t0\t__Secure-3PSID\thttponlyvalue456\n"
                     "malformed line\n")
  assert cookie_file_secrets(str(cookies)) == ["sessionvalue123", "httponlyvalue456"]
  scrub = Scrubber.for_credentials(proxy="http://u:proxypassword@h:1", cookies_file=str(cookies))
  assert scrub("sessionvalue123 httponlyvalue456 proxypassword") == f"{MASK} {MASK} {MASK}"


def test_scrubbing_logger_routes_ytdlp_output_to_debug(caplog):
  log = ScrubbingLogger(logging.getLogger("test.ytdlp"), Scrubber(["topsecret"]))
  caplog.set_level(logging.DEBUG, logger="test.ytdlp")
  log.debug("[debug] token topsecret")
  log.warning("careful: topsecret", only_once=True)
  log.error("ERROR: topsecret failed")
  assert [r.levelno for r in caplog.records] == [logging.DEBUG] * 3
  assert "topsecret" not in caplog.text and caplog.text.count(MASK) == 3
