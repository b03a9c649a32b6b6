"""The INPUT[@START[-END]] syntax of trainer.predict."""

from __future__ import annotations

import pytest

from trainer import predict_inputs
from trainer.predict_inputs import FILE, URL, YOUTUBE, InputError, parse_input


@pytest.fixture
def clip_file(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "clip.mp4").write_bytes(b"")
  (tmp_path / "folder").mkdir()
  return "clip.mp4"


@pytest.mark.parametrize("text, kind, location, start, end", [
    ("clip.mp4", FILE, "clip.mp4", 0.0, None),
    ("clip.mp4@30-40", FILE, "clip.mp4", 30.0, 40.0),
    ("clip.mp4@12.5", FILE, "clip.mp4", 12.5, None),
    ("https://example.org/a.webm@1.5-3", URL, "https://example.org/a.webm", 1.5, 3.0),
    ("http://user@host.example/a.mp4", URL, "http://user@host.example/a.mp4", 0.0, None),  # the '@' is the URL's
    ("yt:dQw4w9WgXcQ@42-52", YOUTUBE, "dQw4w9WgXcQ", 42.0, 52.0),
    ("yt:-4gqARaEJE0", YOUTUBE, "-4gqARaEJE0", 0.0, None),
    ("dQw4w9WgXcQ", YOUTUBE, "dQw4w9WgXcQ", 0.0, None),  # a bare id that is no file
])
def test_inputs_and_spans(text, kind, location, start, end, clip_file):
  media = parse_input(text)
  assert (media.kind, media.location, media.start_s, media.end_s) == (kind, location, start, end)
  assert media.text == text


@pytest.mark.parametrize("text, message", [
    ("missing.mp4", "no such file"),
    ("clip.mp4@40-30", "empty"),
    ("yt:tooshort", "not a YouTube id"),
    ("@3-4", "no media"),
    ("folder", "directory"),
])
def test_bad_inputs_say_what_is_wrong(text, message, clip_file):
  with pytest.raises(InputError, match=message):
    parse_input(text)


def test_url_template_needs_one_ytid_field():
  assert predict_inputs.youtube_url("http://127.0.0.1:8000/{ytid}", "-4gqARaEJE0") == \
      "http://127.0.0.1:8000/-4gqARaEJE0"
  with pytest.raises(InputError, match="ytid"):
    predict_inputs.youtube_url("http://127.0.0.1:8000/{id}", "-4gqARaEJE0")
  with pytest.raises(InputError, match="http"):
    predict_inputs.youtube_url("file:///{ytid}", "-4gqARaEJE0")
