"""build_vggsound end to end: real yt-dlp against a local server, real FFmpeg, real Beam.

One build (module scope) fetches clips that succeed (mp4, webm, one without
audio) and clips that fail in every way a mirror can fail; the tests then
check its accounting (manifest, ledger, Beam counters), its shards as Scenic's
TensorFlow reader and grain read them, and every stored frame and the audio
alignment against the generated media. One further build runs on the default
multi-process DirectRunner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Optional

import numpy as np
import pytest

from pipelines import build, build_vggsound, clip_requests, progress, shards
from pipelines.download.ledger import read_ledger
from shared import contract, records
from shared.manifest import read_manifest
from shared.media import generator
from testsupport.media_server import Fault

from .conftest import (FAST_BUILD_ARGS, IN_MEMORY, SOURCE_SIZE, TEST_SHORT_SIDE, assert_audio_aligned,
                       assert_frames_match, assert_silent, counters, expected_frame_codes,
                       pipeline_results, read_build, requests_for, snapshot, write_lines)

CLIPS_PER_SHARD = 2


@dataclasses.dataclass(frozen=True)
class Row:
  """One file-list row of the build and what must become of it."""

  tag: str
  target: Optional[str]  # served file; None: the id is missing from the server
  start: int
  label: str
  fault: Optional[Fault] = None
  reason: Optional[str] = None  # "class/reason" of the failure; None: written
  attempts: int = 1  # transient failures: --max_attempts=2; media that is not media: one retry


ROWS = (
    Row("mp4", "av.mp4", 1, "dog barking"),
    Row("mp4b", "av.mp4", 2, "bird chirping, tweeting"),  # a label with a comma: quoted
    Row("webm", "av.webm", 1, "cat meowing"),
    Row("mute", "silent.mp4", 0, "dog barking"),
    Row("e404", "av.mp4", 1, "dog barking", Fault.http_status(404), "permanent/http_404"),
    Row("e410", "av.mp4", 1, "dog barking", Fault.http_status(410), "permanent/http_410"),
    Row("e403", "av.mp4", 1, "cat meowing", Fault.http_status(403), "permanent/http_403"),
    Row("e500", "av.mp4", 1, "cat meowing", Fault.http_status(500), "transient/server_error", attempts=2),
    Row("stall", "av.mp4", 1, "cat meowing", Fault.stall(30), "transient/timeout", attempts=2),
    Row("trunc", "av.mp4", 1, "dog barking", Fault.truncate(0.5), "invalid_media/truncated_media", attempts=2),
    Row("html", "av.mp4", 1, "dog barking", Fault.not_media(), "invalid_media/not_media", attempts=2),
    Row("gone", None, 1, "dog barking", None, "permanent/http_404"),
)
MALFORMED_LINE = "not_a_clip.mp4,dog barking"


@dataclasses.dataclass
class VggSoundBuild:
  """The module's build: where it is, how it was run, what it returned and counted."""

  output_dir: str
  argv: list
  manifest: dict
  counters: dict
  ytids: dict  # tag -> YouTube id
  clip_ids: dict  # tag -> clip id
  bad_row_clip_id: str
  file_list: str


def _file_list_line(ytid: str, row: Row) -> str:
  label = f'"{row.label}"' if "," in row.label else row.label
  return f"{ytid}_{row.start:06d}.mp4,{label}"


@pytest.fixture(scope="module")
def vggsound_build(tmp_path_factory, serve, url_template) -> VggSoundBuild:
  work = tmp_path_factory.mktemp("vggsound")
  ytids = {row.tag: serve(row.tag, row.target, row.fault) for row in ROWS}
  lines = [_file_list_line(ytids[row.tag], row) for row in ROWS]
  lines.insert(5, MALFORMED_LINE)
  file_list = write_lines(work / "test.csv", lines)
  output_dir = str(work / "build")
  argv = ["--file_list", file_list, "--split", "test", "--output_dir", output_dir, "--url_template", url_template,
          "--skip_bad_rows", f"--clips_per_shard={CLIPS_PER_SHARD}", *FAST_BUILD_ARGS, IN_MEMORY]
  with pipeline_results() as results:
    manifest = build_vggsound.run(argv).to_json_dict()
  return VggSoundBuild(
      output_dir=output_dir, argv=argv, manifest=manifest, counters=counters(results[-1]), ytids=ytids,
      clip_ids={row.tag: f"yt_{ytids[row.tag]}_{row.start * 1000:09d}" for row in ROWS},
      bad_row_clip_id="bad_row_test_csv_L6", file_list=file_list)


def _row(tag: str) -> Row:
  return next(row for row in ROWS if row.tag == tag)


WRITTEN = [row.tag for row in ROWS if row.reason is None]
FAILED = [row.tag for row in ROWS if row.reason is not None]


# ---------------------------------------------------------------------------
# Accounting: nothing lost.
# ---------------------------------------------------------------------------
def test_every_requested_clip_is_written_or_failed_with_its_reason(vggsound_build):
  manifest = vggsound_build.manifest
  counts = manifest["counts"]
  assert counts["requested"] == len(ROWS) + 1 == counts["written"] + counts["failed"]
  assert counts["written"] == len(WRITTEN)
  expected_reasons = {vggsound_build.clip_ids[tag]: _row(tag).reason for tag in FAILED}
  expected_reasons[vggsound_build.bad_row_clip_id] = "bad_row/malformed"
  assert {entry["clip_id"]: entry["reason"] for entry in manifest["failed_clips"]} == expected_reasons
  assert counts["failed_by_reason"] == {
      "bad_row/malformed": 1, "invalid_media/not_media": 1, "permanent/http_403": 1, "permanent/http_404": 2,
      "invalid_media/truncated_media": 1, "permanent/http_410": 1, "transient/server_error": 1,
      "transient/timeout": 1}
  written = {clip_id for ids in manifest["shard_clip_ids"].values() for clip_id in ids}
  assert written == {vggsound_build.clip_ids[tag] for tag in WRITTEN}
  assert read_manifest(vggsound_build.output_dir).to_json_dict() == manifest


def test_ledger_holds_one_record_per_clip_with_its_reason(vggsound_build):
  ledger = read_ledger(os.path.join(vggsound_build.output_dir, "ledger"))
  assert ledger.corrupt_lines == 0
  assert set(ledger.records) == set(vggsound_build.clip_ids.values()) | {vggsound_build.bad_row_clip_id}
  for tag, clip_id in vggsound_build.clip_ids.items():
    row, record = _row(tag), ledger.records[clip_id]
    assert (record.source_id, record.start_s, record.end_s) == (vggsound_build.ytids[tag], row.start, row.start + 10)
    if row.reason is None:
      assert (record.status, record.reason_class, record.attempts) == ("ok", None, 1)
      media = os.path.join(vggsound_build.output_dir, "media", clip_id + ".mp4")
      assert record.num_bytes == os.path.getsize(media) and len(record.sha256) == 64
    else:
      assert record.status == "failed"
      assert f"{record.reason_class}/{record.reason}" == row.reason
      assert record.attempts == row.attempts, record
  bad_row = ledger.records[vggsound_build.bad_row_clip_id]
  assert (bad_row.status, bad_row.reason_class, bad_row.reason) == ("failed", "bad_row", "malformed")
  assert re.search(r"test\.csv:6: ", bad_row.message)


def test_permanent_failures_are_asked_once_and_transient_ones_retried(vggsound_build, media_server):
  seen = requests_for(media_server, vggsound_build.ytids.values())
  ytids = vggsound_build.ytids
  for tag in ("e404", "e410", "e403", "gone"):
    assert seen[ytids[tag]] == 1, tag
  # One request per attempt at least (ffmpeg adds its own range requests).
  for tag in ("e500", "stall", "trunc", "html"):
    assert seen[ytids[tag]] >= 2, tag


def test_beam_counters_tell_the_same_story(vggsound_build):
  found = vggsound_build.counters
  assert found["fetch/downloaded"] == len(WRITTEN)
  assert "fetch/reused_from_media_dir" not in found
  assert found["fetch/failed_permanent_http_404"] == 2
  for name in ("permanent_http_410", "permanent_http_403", "transient_server_error", "transient_timeout",
               "invalid_media_truncated_media", "invalid_media_not_media"):
    assert found[f"fetch/failed_{name}"] == 1, name
  assert found["features/clips_encoded"] == len(WRITTEN)
  assert found["features/clips_without_audio"] == 1
  assert found["shards/shards_written"] == vggsound_build.manifest["build_options"]["num_shards"]


def test_progress_line_reads_the_ledger(vggsound_build):
  ledger_dir = os.path.join(vggsound_build.output_dir, "ledger")
  line = progress.ProgressMonitor(ledger_dir, total=len(ROWS), interval=0).line()
  # The malformed row is in the ledger but was never fetched: progress leaves it out.
  assert f"{len(ROWS)}/{len(ROWS)} clips fetched" in line
  assert "failures so far: 8" in line and "permanent/http_404 2" in line and "bad_row" not in line


# ---------------------------------------------------------------------------
# Shards: a complete set in both formats, as the manifest says.
# ---------------------------------------------------------------------------
def test_shards_form_a_complete_set_in_both_formats(vggsound_build):
  manifest = vggsound_build.manifest
  num_shards = shards.num_shards_for(len(ROWS), CLIPS_PER_SHARD)
  assert manifest["build_options"]["num_shards"] == num_shards
  names = [records.shard_name("test", index, num_shards) for index in range(num_shards)]
  assert manifest["shards"] == {"tfrecord": names, "arrayrecord": [n + ".array_record" for n in names]}
  on_disk = sorted(name for name in os.listdir(vggsound_build.output_dir) if name.startswith("test-"))
  assert on_disk == sorted(names + [n + ".array_record" for n in names])  # nothing .incomplete left
  # shard_clip_ids names the TFRecord shards (what refresh and Scenic read), in file order.
  assert list(manifest["shard_clip_ids"]) == names
  assert manifest["shard_sizes"] == {name: os.path.getsize(os.path.join(vggsound_build.output_dir, name))
                                     for name in on_disk}
  for name in names:
    path = os.path.join(vggsound_build.output_dir, name)
    from_tfrecord = list(records.read_tfrecord(path))
    assert records.read_array_record(path + ".array_record") == from_tfrecord
    assert [records.decode(s).clip_id for s in from_tfrecord] == manifest["shard_clip_ids"][name]
    assert all(shards.shard_of(clip_id, num_shards) == names.index(name)
               for clip_id in manifest["shard_clip_ids"][name])


def test_scenic_reader_parses_every_record_and_its_frames_are_the_source_frames(vggsound_build, source_media):
  import tensorflow as tf

  context_spec, sequence_spec = records.scenic_feature_spec()
  paths = [os.path.join(vggsound_build.output_dir, name) for name in vggsound_build.manifest["shards"]["tfrecord"]]
  labels = contract.LabelMap.from_json_dict(vggsound_build.manifest["label_map"])
  tag_of = {clip_id: tag for tag, clip_id in vggsound_build.clip_ids.items()}
  seen = []
  for serialized in tf.data.TFRecordDataset(paths):
    context, sequence = tf.io.parse_single_sequence_example(serialized, context_features=context_spec,
                                                            sequence_features=sequence_spec)
    ours = records.decode(serialized.numpy())
    row = _row(tag_of[ours.clip_id])
    clip = source_media.by_name(row.target)
    seen.append(ours.clip_id)

    assert tf.sparse.to_dense(context[contract.LABEL_INDEX_KEY]).numpy().tolist() == [labels.index_of_name(row.label)]
    images = sequence[contract.IMAGE_KEY].numpy()
    assert len(images) == contract.num_frames(10.0) == 250
    decoded = [tf.io.decode_jpeg(image).numpy() for image in images]
    width, height = contract.resized_frame_size(*SOURCE_SIZE, TEST_SHORT_SIDE)
    assert {frame.shape for frame in decoded} == {(height, width, 3)}
    codes = [generator.read_frame_code(frame) for frame in decoded]
    assert codes == expected_frame_codes(clip, row.start, 250)
    melspec = sequence[contract.MELSPEC_KEY].numpy()
    assert melspec.shape == (10, contract.MELSPEC_STEP_ROWS, contract.MEL_NUM_BINS)
    np.testing.assert_array_equal(melspec.reshape(-1, contract.MEL_NUM_BINS), ours.melspec)
  assert sorted(seen) == sorted(vggsound_build.clip_ids[tag] for tag in WRITTEN)


def test_grain_reads_the_same_records_from_array_record(vggsound_build):
  import grain

  manifest = vggsound_build.manifest
  paths = [os.path.join(vggsound_build.output_dir, name) for name in manifest["shards"]["arrayrecord"]]
  source = grain.sources.ArrayRecordDataSource(paths)
  assert len(source) == manifest["counts"]["written"]
  from_grain = [source[index] for index in range(len(source))]
  in_file_order = [clip_id for name in manifest["shards"]["tfrecord"] for clip_id in manifest["shard_clip_ids"][name]]
  assert [records.decode(serialized).clip_id for serialized in from_grain] == in_file_order
  from_tfrecord = [serialized for name in manifest["shards"]["tfrecord"]
                   for serialized in records.read_tfrecord(os.path.join(vggsound_build.output_dir, name))]
  assert from_grain == from_tfrecord


# ---------------------------------------------------------------------------
# Values against the generated media.
# ---------------------------------------------------------------------------
def test_every_frame_and_the_audio_match_the_source(vggsound_build, source_media):
  stored = read_build(vggsound_build.output_dir)
  for tag in WRITTEN:
    row, record = _row(tag), stored[vggsound_build.clip_ids[tag]]
    clip = source_media.by_name(row.target)
    assert_frames_match(record, clip, row.start, row.start + 10)
    if clip.spec.audio:
      assert_audio_aligned(record, clip, row.start, row.start + 10)
    else:
      assert_silent(record)


def test_record_fields_describe_the_clip_and_its_source(vggsound_build, source_media):
  stored = read_build(vggsound_build.output_dir)
  labels = contract.LabelMap.from_json_dict(vggsound_build.manifest["label_map"])
  for tag in WRITTEN:
    row, record = _row(tag), stored[vggsound_build.clip_ids[tag]]
    clip = source_media.by_name(row.target)
    assert (record.dataset, record.source_id) == ("vggsound", vggsound_build.ytids[tag])
    assert (record.start_s, record.end_s, record.decoded_duration_s) == (row.start, row.start + 10, 10.0)
    assert (record.label_indices, record.label_names) == ([labels.index_of_name(row.label)], [row.label])
    assert (record.verb_index, record.noun_index, record.action_index) == (contract.NO_LABEL,) * 3
    assert record.has_audio == clip.spec.audio
    assert record.source_fps == pytest.approx(clip.spec.fps)
    assert (record.source_width, record.source_height) == SOURCE_SIZE
    assert (record.frame_width, record.frame_height) == contract.resized_frame_size(*SOURCE_SIZE, TEST_SHORT_SIDE)


def test_label_map_lists_the_sorted_labels_of_the_list(vggsound_build):
  with open(os.path.join(vggsound_build.output_dir, "label_map.json")) as f:
    label_map = json.load(f)
  assert label_map == vggsound_build.manifest["label_map"]
  assert [c["name"] for c in label_map["classes"]] == ["bird chirping, tweeting", "cat meowing", "dog barking"]
  assert [c["index"] for c in label_map["classes"]] == [0, 1, 2]
  assert label_map["num_classes"] == 3 and label_map["name"] == "vggsound"


def test_log_mel_moments_are_those_of_the_written_clips_with_audio(vggsound_build):
  written = read_build(vggsound_build.output_dir)
  melspecs = np.concatenate([np.asarray(r.melspec, np.float64).ravel() for r in written.values() if r.has_audio])
  assert vggsound_build.manifest["melspec_mean"] == pytest.approx(melspecs.mean(), rel=1e-6)
  assert vggsound_build.manifest["melspec_std"] == pytest.approx(melspecs.std(), rel=1e-6)
  # The clip without audio is written (has_audio 0, silence's log-mel), counted, and left out of the moments.
  assert vggsound_build.manifest["clips_without_audio"] == [vggsound_build.clip_ids["mute"]]
  assert not written[vggsound_build.clip_ids["mute"]].has_audio
  contract.check_contract(vggsound_build.manifest["contract"])


def test_require_audio_fails_clips_without_audio(serve, url_template, tmp_path):
  ytids = [serve("needa", "av.mp4"), serve("needa", "silent.mp4")]
  file_list = write_lines(tmp_path / "list.csv", [f"{ytid}_000001.mp4,dog barking" for ytid in ytids])
  manifest = build_vggsound.run(["--file_list", file_list, "--output_dir", str(tmp_path / "build"), "--url_template",
                                 url_template, "--require_audio", *FAST_BUILD_ARGS, IN_MEMORY]).to_json_dict()
  assert manifest["failed_clips"] == [{"clip_id": f"yt_{ytids[1]}_000001000", "reason": "invalid_media/missing_stream"}]
  assert manifest["clips_without_audio"] == [] and manifest["counts"]["written"] == 1


# ---------------------------------------------------------------------------
# Re-runs and refusals.
# ---------------------------------------------------------------------------
def test_rerunning_a_finished_build_changes_nothing(vggsound_build, media_server, capsys):
  before = snapshot(vggsound_build.output_dir)
  requests_before = media_server.request_count()
  manifest = build_vggsound.run(vggsound_build.argv).to_json_dict()
  assert manifest == vggsound_build.manifest
  assert snapshot(vggsound_build.output_dir) == before  # same files, bytes and mtimes
  assert media_server.request_count() == requests_before
  assert "already complete, unchanged" in capsys.readouterr().out


def test_a_finished_build_of_other_options_is_refused(vggsound_build, capsys):
  before = snapshot(vggsound_build.output_dir)
  argv = [a for a in vggsound_build.argv if not a.startswith("--clips_per_shard")] + ["--clips_per_shard=3"]
  assert build_vggsound.main(argv) == 2
  assert "--previous_build" in capsys.readouterr().err
  assert snapshot(vggsound_build.output_dir) == before


@pytest.mark.parametrize("change, named", [
    (["--clip_seconds=5"], r"\d+ clips with other spans \(e\.g\. yt_\w+: (\d)-1\d s there, \1-\d s now\)"),
    ("relabel", r"\d+ clips with other labels \(e\.g\. yt_\w+: \['dog barking'\] there, \['dog growling'\] now\)"),
])
def test_a_finished_build_of_other_requests_is_refused_naming_the_difference(vggsound_build, tmp_path, capsys,
                                                                             change, named):
  before = snapshot(vggsound_build.output_dir)
  argv = list(vggsound_build.argv)
  if change == "relabel":
    relabelled = tmp_path / "relabelled.csv"
    relabelled.write_text(open(vggsound_build.file_list).read().replace("dog barking", "dog growling"))
    argv[argv.index("--file_list") + 1] = str(relabelled)
  else:
    argv += change
  assert build_vggsound.main(argv) == 2
  error = capsys.readouterr().err
  assert re.search(named, error) and "--previous_build" in error
  assert snapshot(vggsound_build.output_dir) == before


def test_the_requests_file_says_what_was_asked(vggsound_build):
  asked = clip_requests.read_requests(os.path.join(vggsound_build.output_dir, "requests.jsonl.gz"))
  assert [r.clip_id for r in asked.clips] == sorted(vggsound_build.clip_ids.values())
  assert [b.clip_id for b in asked.bad_rows] == [vggsound_build.bad_row_clip_id]
  mp4 = next(r for r in asked.clips if r.clip_id == vggsound_build.clip_ids["mp4"])
  assert (mp4.start_s, mp4.end_s, mp4.label_names) == (1.0, 11.0, ("dog barking",))
  assert vggsound_build.manifest["request_fingerprint"] == asked.fingerprint()


def test_a_malformed_row_stops_the_build_without_skip_bad_rows(vggsound_build, tmp_path, capsys):
  argv = [a for a in vggsound_build.argv if a != "--skip_bad_rows"]
  argv[argv.index("--output_dir") + 1] = str(tmp_path / "never")
  assert build_vggsound.main(argv) == 2
  assert f"{vggsound_build.file_list}:6:" in capsys.readouterr().err
  assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------------------
# Bad bytes in vggsound.csv: bad rows in the ledger, the good rows built.
# ---------------------------------------------------------------------------
def test_bad_bytes_in_the_csv_are_bad_rows_and_the_other_rows_are_built(serve, url_template, tmp_path, capsys):
  good = {serve("bytes", "av.mp4"): "dog barking", serve("bytes", "av.webm"): "cat meowing"}
  (first, first_label), (last, last_label) = good.items()
  never_fetched = [serve("bytes") for _ in range(4)]
  lines = [f"{first},1,{first_label},test".encode(),
           never_fetched[0].encode() + b",1,dog bark\xffing,test",  # not UTF-8
           never_fetched[1].encode() + b",1," + b"x" * 2_000_000 + b",test",  # a 2 MB field
           never_fetched[2].encode() + b",1,dog\0barking,test",  # NUL in a label: never a new class
           never_fetched[3].encode() + b",1,dog  barking,test",  # nor a double space
           f"{last},1,{last_label},test".encode()]
  annotations = tmp_path / "vggsound.csv"
  annotations.write_bytes(b"".join(line + b"\r\n" for line in lines))
  output_dir = tmp_path / "build"
  argv = ["--csv", str(annotations), "--split", "test", "--output_dir", str(output_dir), "--url_template",
          url_template, *FAST_BUILD_ARGS, IN_MEMORY]

  assert build_vggsound.main(argv) == 2
  stderr = capsys.readouterr().err
  assert f"error: {annotations}:2: invalid UTF-8 byte 0xFF at column 23\n" in stderr
  assert not output_dir.exists()

  manifest = build_vggsound.run(argv + ["--skip_bad_rows"]).to_json_dict()
  assert manifest["counts"] == {"requested": 6, "written": 2, "failed": 4,
                                "failed_by_reason": {"bad_row/malformed": 4}}
  assert sorted(clip_id for ids in manifest["shard_clip_ids"].values() for clip_id in ids) == sorted(
      f"yt_{ytid}_000001000" for ytid in good)
  assert [c["name"] for c in manifest["label_map"]["classes"]] == ["cat meowing", "dog barking"]
  ledger = read_ledger(str(output_dir / "ledger"))
  bad_rows = {clip_id: r.message for clip_id, r in ledger.records.items() if r.reason_class == "bad_row"}
  assert {entry["clip_id"] for entry in manifest["failed_clips"]} == set(bad_rows)
  assert bad_rows.keys() == {f"bad_row_vggsound_csv_L{line}" for line in (2, 3, 4, 5)}
  assert bad_rows["bad_row_vggsound_csv_L2"] == f"{annotations}:2: invalid UTF-8 byte 0xFF at column 23"
  assert bad_rows["bad_row_vggsound_csv_L3"].startswith(
      f"{annotations}:3: line of 2,000,019 characters is longer than the limit of 16,384: '{never_fetched[1]},1,xxx")
  assert bad_rows["bad_row_vggsound_csv_L4"] == f"{annotations}:4: control character U+0000 '\\x00' at column 18"
  assert bad_rows["bad_row_vggsound_csv_L5"].startswith(
      f"{annotations}:5: label 'dog  barking' has stray whitespace")
  assert all(len(message) < 300 for message in bad_rows.values())


# ---------------------------------------------------------------------------
# The default local runner: several worker processes.
# ---------------------------------------------------------------------------
def test_default_multi_process_runner_builds_the_same_records(serve, url_template, source_media, tmp_path):
  ytids = [serve("multi", "av.mp4"), serve("multi", "av.webm"), serve("multi", "av.mp4", Fault.http_status(404))]
  file_list = write_lines(tmp_path / "list.csv", [f"{ytid}_000001.mp4,dog barking" for ytid in ytids])
  output_dir = tmp_path / "build"
  # No --direct_running_mode and default frames: the local default, as a user runs it.
  with pipeline_results() as results:
    manifest = build_vggsound.run(["--file_list", file_list, "--output_dir", str(output_dir), "--url_template",
                                   url_template, "--progress_interval=0"]).to_json_dict()
  assert results[-1].state == "DONE"
  options = build.pipeline_options([])
  assert options.get_all_options()["direct_running_mode"] == "multi_processing"
  assert manifest["counts"] == {"requested": 3, "written": 2, "failed": 1,
                                "failed_by_reason": {"permanent/http_404": 1}}
  assert counters(results[-1])["features/clips_encoded"] == 2
  stored = read_build(output_dir)
  for ytid, target in zip(ytids[:2], ("av.mp4", "av.webm")):
    record = stored[f"yt_{ytid}_000001000"]
    assert (record.frame_width, record.frame_height) == contract.resized_frame_size(*SOURCE_SIZE)
    assert_frames_match(record, source_media.by_name(target), 1.0, 11.0)
    assert_audio_aligned(record, source_media.by_name(target), 1.0, 11.0)


def test_two_clean_builds_of_the_same_input_write_identical_shards(serve, url_template, tmp_path):
  # One build on the default runner (worker processes), one in this process: every process has its own hash seed.
  ytids = [serve("same", "av.mp4"), serve("same", "av.webm"), serve("same", "silent.mp4")]
  file_list = write_lines(tmp_path / "list.csv", [f"{ytid}_000001.mp4,dog barking" for ytid in ytids])
  digests = []
  for name, runner_args in (("multi", []), ("in_memory", [IN_MEMORY])):
    output_dir = tmp_path / name
    build_vggsound.run(["--file_list", file_list, "--output_dir", str(output_dir), "--url_template", url_template,
                        *FAST_BUILD_ARGS, *runner_args])
    digests.append({path.name: hashlib.sha256(path.read_bytes()).hexdigest()
                    for path in sorted(output_dir.glob("test-*"))})
  assert len(digests[0]) == 2 and digests[0] == digests[1]
