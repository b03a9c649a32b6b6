"""Refreshing a build (--previous_build): carry over, fetch only what is new or worth retrying, report.

Build A, then the mirror changes (media vanishes, failing media comes back)
and the annotations change (a row removed, a label changed, rows added);
build B refreshes A, build C refreshes B with --recheck_unavailable, build D
refreshes A with other frame options (nothing can be carried over). Server
request counts show what each build really fetched.
"""

from __future__ import annotations

import dataclasses
import json
import os

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines import build, build_vggsound, manifest as manifest_lib, refresh, shards
from pipelines.download.ledger import read_ledger
from pipelines.shards import EncodedClip
from pipelines.sources.rows import ClipRequest
from shared import contract, records
from shared.manifest import Manifest, write_manifest
from testsupport.media_server import Fault

from .conftest import (FAST_BUILD_ARGS, IN_MEMORY, assert_frames_match, counters, pipeline_results, read_build,
                       requests_for, snapshot, write_lines)

DOG, CAT, BIRD = "dog barking", "cat meowing", "bird chirping, tweeting"
TAGS = ("keep", "vanish", "relabel", "dropped", "back", "worse", "private", "new", "newbad")


@dataclasses.dataclass
class Refresh:
  """The four builds of the module: their arguments, directories, manifests, counters and server requests."""

  ytids: dict
  argv: dict  # build name -> argv
  dirs: dict  # build name -> output dir
  manifests: dict
  counters: dict
  requests: dict  # build name -> {tag: requests the server saw during that build}


def _clip_id(ytid: str) -> str:
  return f"yt_{ytid}_000001000"


def _line(ytid: str, label: str) -> str:
  return f'{ytid}_000001.mp4,"{label}"'


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory, serve, media_server, url_template) -> Refresh:
  work = tmp_path_factory.mktemp("refresh")
  ytids = {tag: serve(tag, "av.mp4") for tag in TAGS}
  name = {tag: f"{ytid}.mp4" for tag, ytid in ytids.items()}
  media_server.inject(name["back"], Fault.http_status(503))
  media_server.inject(name["worse"], Fault.http_status(503))
  media_server.inject(name["private"], Fault.http_status(404))
  media_server.inject(name["newbad"], Fault.http_status(410))

  first_list = write_lines(work / "first.csv", [_line(ytids[tag], DOG) for tag in TAGS[:7]])
  # The second list drops a row, relabels one and adds two, one with a new label.
  second_list = write_lines(work / "second.csv", [
      _line(ytids["keep"], DOG), _line(ytids["vanish"], DOG), _line(ytids["relabel"], CAT),
      _line(ytids["back"], DOG), _line(ytids["worse"], DOG), _line(ytids["private"], DOG),
      _line(ytids["new"], BIRD), _line(ytids["newbad"], CAT)])
  dirs = {build_name: str(work / build_name) for build_name in "ABCD"}
  common = ["--url_template", url_template, *FAST_BUILD_ARGS, IN_MEMORY]
  argv = {
      "A": ["--file_list", first_list, "--output_dir", dirs["A"], *common],
      "B": ["--file_list", second_list, "--output_dir", dirs["B"], "--previous_build", dirs["A"], *common],
      "C": ["--file_list", second_list, "--output_dir", dirs["C"], "--previous_build", dirs["B"],
            "--recheck_unavailable", *common],
      "D": ["--file_list", second_list, "--output_dir", dirs["D"], "--previous_build", dirs["A"], *common,
            "--frame_short_side=48"],
  }
  manifests, found_counters, requests = {}, {}, {}

  def run(build_name: str) -> None:
    before = requests_for(media_server, ytids.values())
    with pipeline_results() as results:
      manifests[build_name] = build_vggsound.run(argv[build_name]).to_json_dict()
    after = requests_for(media_server, ytids.values())
    requests[build_name] = {tag: after[ytid] - before[ytid] for tag, ytid in ytids.items()}
    found_counters[build_name] = counters(results[-1])

  run("A")
  # The mirror changes: media vanishes, failing media comes back, failing media fails otherwise.
  media_server.inject(name["vanish"], Fault.http_status(404))
  media_server.clear_faults(name["back"])
  media_server.inject(name["worse"], Fault.http_status(404))
  media_server.clear_faults(name["private"])
  run("B")
  run("C")
  run("D")
  return Refresh(ytids=ytids, argv=argv, dirs=dirs, manifests=manifests, counters=found_counters, requests=requests)


def _ids(refresh_state: Refresh, *tags) -> list[str]:
  return sorted(_clip_id(refresh_state.ytids[tag]) for tag in tags)


def _report(refresh_state: Refresh, build_name: str) -> dict:
  with open(os.path.join(refresh_state.dirs[build_name], "refresh_report.json")) as f:
    return json.load(f)


def test_first_build(refreshed):
  counts = refreshed.manifests["A"]["counts"]
  assert counts == {"requested": 7, "written": 4, "failed": 3,
                    "failed_by_reason": {"permanent/http_404": 1, "transient/server_error": 2}}


def test_carried_over_clips_are_not_downloaded_again(refreshed):
  seen = refreshed.requests["B"]
  for tag in ("keep", "vanish", "relabel"):
    assert seen[tag] == 0, tag
  # A permanent failure is not re-checked, though the mirror serves it again.
  assert seen["private"] == 0
  for tag in ("back", "worse", "new", "newbad"):
    assert seen[tag] > 0, tag
  assert refreshed.counters["B"]["fetch/downloaded"] == 2  # back and new
  assert "fetch/reused_from_media_dir" not in refreshed.counters["B"]


def test_refresh_report_names_kept_new_recovered_lost_and_failing_clips(refreshed):
  report = _report(refreshed, "B")
  assert report["kept"] == _ids(refreshed, "keep", "vanish", "relabel")
  assert report["new"] == _ids(refreshed, "new")
  assert report["recovered"] == _ids(refreshed, "back")
  assert report["lost"] == _ids(refreshed, "dropped")
  assert report["lost_reasons"] == {_clip_id(refreshed.ytids["dropped"]): "no longer requested"}
  assert report["still_failing"] == _ids(refreshed, "worse", "private")
  assert report["newly_failing"] == _ids(refreshed, "newbad")
  assert report["newly_failing_reasons"] == {_clip_id(refreshed.ytids["newbad"]): "permanent/http_410"}
  assert report["counts"] == {"kept": 3, "new": 1, "recovered": 1, "lost": 1, "still_failing": 2,
                              "newly_failing": 1}
  assert report["previous_build_created"] == refreshed.manifests["A"]["created"]
  assert report == refresh.refresh_report(Manifest.from_json_dict(refreshed.manifests["A"]),
                                          Manifest.from_json_dict(refreshed.manifests["B"]))


def test_refreshed_build_accounts_for_every_requested_clip(refreshed):
  manifest = refreshed.manifests["B"]
  assert manifest["counts"] == {"requested": 8, "written": 5, "failed": 3, "failed_by_reason": {
      "permanent/http_404": 2, "permanent/http_410": 1}}
  assert manifest["previous_build"] == refreshed.dirs["A"]
  reasons = {entry["clip_id"]: entry["reason"] for entry in manifest["failed_clips"]}
  assert reasons[_clip_id(refreshed.ytids["worse"])] == "permanent/http_404"  # was transient in A
  ledger = read_ledger(os.path.join(refreshed.dirs["B"], "ledger"))
  assert sorted(ledger.records) == _ids(refreshed, *(t for t in TAGS if t != "dropped"))
  carried = ledger.records[_clip_id(refreshed.ytids["keep"])]
  assert carried == read_ledger(os.path.join(refreshed.dirs["A"], "ledger")).records[carried.clip_id]


def test_carried_clips_keep_their_media_and_take_the_new_labels(refreshed, source_media):
  before, after = read_build(refreshed.dirs["A"]), read_build(refreshed.dirs["B"])
  labels = contract.LabelMap.from_json_dict(refreshed.manifests["B"]["label_map"])
  assert labels.names == (BIRD, CAT, DOG)  # the new label shifts the indices
  for tag, label in (("keep", DOG), ("vanish", DOG), ("relabel", CAT)):
    clip_id = _clip_id(refreshed.ytids[tag])
    assert after[clip_id].jpeg_frames == before[clip_id].jpeg_frames
    assert (after[clip_id].melspec == before[clip_id].melspec).all()
    assert after[clip_id].label_names == [label]
    assert after[clip_id].label_indices == [labels.index_of_name(label)]
    assert_frames_match(after[clip_id], source_media.av_mp4, 1.0, 11.0)
  assert before[_clip_id(refreshed.ytids["relabel"])].label_names == [DOG]


def test_recheck_unavailable_retries_permanent_failures(refreshed):
  seen = refreshed.requests["C"]
  for tag in ("keep", "vanish", "relabel", "back", "new"):
    assert seen[tag] == 0, tag
  for tag in ("private", "worse", "newbad"):
    assert seen[tag] > 0, tag
  report = _report(refreshed, "C")
  assert report["recovered"] == _ids(refreshed, "private")
  assert report["still_failing"] == _ids(refreshed, "worse", "newbad")
  assert report["kept"] == _ids(refreshed, "keep", "vanish", "relabel", "back", "new")
  assert refreshed.manifests["C"]["counts"]["written"] == 6


def test_nothing_is_carried_over_when_frame_options_change(refreshed):
  # Every clip is fetched again: the one that vanished from the mirror is lost.
  seen = refreshed.requests["D"]
  for tag in ("keep", "relabel", "vanish", "back", "new"):
    assert seen[tag] > 0, tag
  assert seen["private"] == 0  # still a permanent failure of A, not re-checked
  report = _report(refreshed, "D")
  assert report["lost"] == _ids(refreshed, "dropped", "vanish")
  assert report["lost_reasons"][_clip_id(refreshed.ytids["vanish"])] == "permanent/http_404"
  assert refreshed.manifests["D"]["build_options"]["frame_short_side"] == 48
  assert {r.frame_height for r in read_build(refreshed.dirs["D"]).values()} == {48}


def test_clips_whose_span_changed_are_fetched_again_not_carried_over(refreshed, media_server, tmp_path):
  before = requests_for(media_server, [refreshed.ytids["keep"]])
  argv = list(refreshed.argv["A"])
  argv[argv.index("--output_dir") + 1] = str(tmp_path / "shorter")
  manifest = build_vggsound.run([*argv, "--previous_build", refreshed.dirs["A"], "--clip_seconds=5"])
  assert requests_for(media_server, [refreshed.ytids["keep"]])[refreshed.ytids["keep"]] > before[refreshed.ytids["keep"]]
  record = read_build(tmp_path / "shorter")[_clip_id(refreshed.ytids["keep"])]
  assert (record.start_s, record.end_s, len(record.jpeg_frames)) == (1.0, 6.0, 125)
  assert manifest.counts.requested == 7


def test_rerunning_a_finished_refresh_changes_nothing(refreshed, media_server):
  before = snapshot(refreshed.dirs["B"])
  requests_before = media_server.request_count()
  assert build_vggsound.run(refreshed.argv["B"]).to_json_dict() == refreshed.manifests["B"]
  assert snapshot(refreshed.dirs["B"]) == before
  assert media_server.request_count() == requests_before


def test_refresh_command_compares_two_builds(refreshed, capsys):
  assert refresh.main([refreshed.dirs["A"], refreshed.dirs["B"], "--json"]) == 0
  assert json.loads(capsys.readouterr().out) == _report(refreshed, "B")
  assert refresh.main([refreshed.dirs["A"], refreshed.dirs["B"]]) == 0
  assert capsys.readouterr().out.strip() == (
      "refresh: kept 3, new 1, recovered 1, lost 1, still failing 2, newly failing 1")


def test_refresh_from_an_unfinished_build_is_refused(refreshed, tmp_path, capsys):
  argv = list(refreshed.argv["B"])
  argv[argv.index("--previous_build") + 1] = str(tmp_path / "no_build_here")
  argv[argv.index("--output_dir") + 1] = str(tmp_path / "out")
  assert build_vggsound.main(argv) == 2
  assert "holds no finished build" in capsys.readouterr().err
  assert not (tmp_path / "out").exists()


def test_carry_over_reads_a_previous_build_written_as_array_record_only(tmp_path):
  previous = tmp_path / "previous"
  previous.mkdir()
  clip_id = "yt_abcdefghijk_000001000"
  record = records.ClipRecord(
      clip_id=clip_id, dataset="vggsound", source_id="abcdefghijk", start_s=1.0, end_s=2.0,
      jpeg_frames=[b"frame"] * 25, frame_width=86, frame_height=64, melspec=np.zeros((100, 128), np.float32),
      num_audio_samples=16000, label_indices=[0], label_names=[CAT], has_audio=True, decoded_duration_s=1.0,
      source_fps=25.0, source_width=160, source_height=120)
  feature_options = {"frame_short_side": 64, "jpeg_quality": 90}
  info = shards.write_shard_files(str(previous), "test", 0, 1, [EncodedClip.from_record(record)], [shards.ARRAYRECORD])
  built = manifest_lib.build_manifest(
      dataset="vggsound", split="test", label_map=contract.LabelMap.from_names("vggsound", [CAT]), requested=1,
      shard_infos=[info], failures=[], moments=[], build_options=feature_options)
  write_manifest(str(previous), built)
  manifest = built.to_json_dict()
  assert list(manifest["shard_clip_ids"]) == ["test-00000-of-00001.array_record"]
  request = ClipRequest(dataset="vggsound", clip_id=clip_id, source_id="abcdefghijk", start_s=1.0, end_s=2.0,
                        label_indices=(1,), label_names=(DOG,))

  plan = refresh.plan_refresh([request], str(previous), feature_options)
  assert (plan.to_fetch, dict(plan.carry_over)) == ((), {clip_id: "test-00000-of-00001.array_record"})
  pipeline = beam.Pipeline(options=build.pipeline_options([IN_MEMORY]))
  carried = (pipeline | beam.Create([(request, shard) for shard in plan.carry_over.values()])
             | refresh.CarryOverPreviousClips(str(previous)))
  assert_that(carried | beam.Map(lambda clip: (clip.clip_id, records.decode(clip.serialized).label_names)),
              equal_to([(clip_id, [DOG])]))
  pipeline.run().wait_until_finish()


def test_a_span_refused_as_invalid_is_judged_again_but_a_gone_video_is_not(tmp_path):
  # The previous build refused one clip's span (e.g. a lower --max_span_seconds)
  # and found another clip's video gone: a refresh fetches the first again and
  # keeps the second's failure.
  from pipelines import features
  from pipelines.download import ledger as ledger_lib
  from shared.failures import Reason

  previous = tmp_path / "previous"
  requests = [ClipRequest(dataset="vggsound", clip_id=f"yt_{ytid}_000001000", source_id=ytid, start_s=1.0,
                          end_s=11.0, label_indices=(0,), label_names=(CAT,)) for ytid in ("abcdefghijk", "bcdefghijkl")]
  failed = [features.failure_record(requests[0], Reason.INVALID_SPAN, "span of 10.000 s is longer than 5"),
            features.failure_record(requests[1], Reason.HTTP_NOT_FOUND, "gone")]
  ledger_lib.write_records(str(previous / "ledger"), failed)
  write_manifest(str(previous), manifest_lib.build_manifest(
      dataset="vggsound", split="test", label_map=contract.LabelMap.from_names("vggsound", [CAT]), requested=2,
      shard_infos=[], failures=[(r.clip_id, f"{r.reason_class}/{r.reason}") for r in failed], moments=[],
      build_options={}))

  plan = refresh.plan_refresh(requests, str(previous), {})

  assert plan.to_fetch == (requests[0],)
  assert [f.clip_id for f in plan.carried_failures] == [requests[1].clip_id]
