"""Clip identity: unique, round-trippable, filesystem and command-line safe."""

import decimal
import itertools

import pytest

from pipelines.sources import clip_id

REAL_IDS = ["--4gqARaEJE", "-0BIyqJj9ZU", "zzbTaK7CXJY", "Arg6lz6Wryw", "_-_-_-_-_-_", "aaaaaaaaaaa"]


@pytest.mark.parametrize("ytid", REAL_IDS)
@pytest.mark.parametrize("start", [0, 30, 417.3, "202.700", decimal.Decimal("0.001"), 999_999.999])
def test_round_trip(ytid, start):
  text = clip_id.youtube_clip_id(ytid, start)
  segment = clip_id.parse_youtube_clip_id(text)
  assert segment == (ytid, clip_id.seconds_to_ms(start))
  assert segment.start_s == pytest.approx(float(start))


def test_format_is_documented_one():
  assert clip_id.youtube_clip_id("--4gqARaEJE", 30) == "yt_--4gqARaEJE_000030000"
  assert clip_id.youtube_clip_id("Arg6lz6Wryw", 417.3) == "yt_Arg6lz6Wryw_000417300"


@pytest.mark.parametrize("ytid", REAL_IDS)
def test_safe_for_files_and_command_lines(ytid):
  text = clip_id.youtube_clip_id(ytid, 10)
  assert not text.startswith(("-", "."))
  assert "/" not in text and "\\" not in text and "\0" not in text
  assert clip_id.is_safe_clip_id(text)


def test_unique_over_ids_and_starts():
  ytids = ["-" * 11, "-" * 10 + "_", "A" * 11, "a" * 11]
  starts = [0, 0.001, 1, 10, 10.5, 417.3, 1000]
  ids = [clip_id.youtube_clip_id(y, s) for y, s in itertools.product(ytids, starts)]
  assert len(set(ids)) == len(ids)


def test_lexical_order_is_start_order_within_a_video():
  starts = [0, 0.5, 9, 10, 100, 417.3, 5000]
  ids = [clip_id.youtube_clip_id("abcdefghijk", s) for s in starts]
  assert ids == sorted(ids)


@pytest.mark.parametrize(
    "ytid", ["short", "twelve_chars", "with space1", "abc/defghij", "abcdefghij\n", "abcdéfghijk", ""]
)
def test_refuses_bad_youtube_ids(ytid):
  assert not clip_id.is_youtube_id(ytid)
  with pytest.raises(ValueError, match="YouTube id"):
    clip_id.youtube_clip_id(ytid, 0)


@pytest.mark.parametrize("start", [-1, 0.0005, 1_000_000, float("nan"), float("inf"), "abc"])
def test_refuses_bad_starts(start):
  with pytest.raises(ValueError):
    clip_id.youtube_clip_id("abcdefghijk", start)


@pytest.mark.parametrize(
    "text",
    [
        "yt_abcdefghijk_00003000",
        "yt_abcdefghijk_0000300000",
        "abcdefghijk_000030000",
        "yt_abc_000030000",
        "yt_abcdefghijk_00003000x",
    ],
)
def test_parse_refuses_other_strings(text):
  with pytest.raises(ValueError, match="not a YouTube clip id"):
    clip_id.parse_youtube_clip_id(text)


@pytest.mark.parametrize(
    "text, ms", [("0", 0), ("417.300", 417300), ("417.3", 417300), ("10.0000", 10000), ("1.5", 1500)]
)
def test_seconds_text_to_ms(text, ms):
  assert clip_id.seconds_text_to_ms(text) == ms


@pytest.mark.parametrize("text", ["-1.0", "1e3", "nan", "inf", "1.0005", "", " 1", "1.", ".5", "١"])
def test_seconds_text_to_ms_refuses(text):
  with pytest.raises(ValueError):
    clip_id.seconds_text_to_ms(text)


def test_epic_clip_id_is_the_narration_id():
  assert clip_id.epic_clip_id("P01_11_0") == "P01_11_0"
  assert clip_id.epic_clip_id("P01_101_12") == "P01_101_12"
  assert clip_id.is_safe_clip_id("P01_101_12")
  for bad in ("P1_11_0", "../P01_11_0", "P01_11", "P01_11_0\n", "-P01_11_0"):
    with pytest.raises(ValueError):
      clip_id.epic_clip_id(bad)


@pytest.mark.parametrize("text", ["-abc", ".hidden", "a/b", "a b", "", "a" * 129, "a\\b", "a:b"])
def test_unsafe_clip_ids(text):
  assert not clip_id.is_safe_clip_id(text)
