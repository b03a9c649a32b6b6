"""A build on gs://, against a GCS emulator on 127.0.0.1: ledger, staging, shards, manifest, refresh, resume."""

from __future__ import annotations

import pytest

from pipelines import build_vggsound
from pipelines.download.ledger import read_ledger
from shared import files, records
from shared.manifest import read_manifest

from .conftest import FAST_BUILD_ARGS, IN_MEMORY, assert_frames_match, write_lines


@pytest.fixture(scope="module")
def gcs_builds(gcs, serve, url_template, tmp_path_factory):
  work = tmp_path_factory.mktemp("gcs")
  ytids = {tag: serve(tag, "av.mp4") for tag in ("gkeep", "gnew")}
  gone = serve("ggone")  # not served: a 404
  first = write_lines(work / "first.csv", [f"{ytids['gkeep']}_000001.mp4,dog barking", f"{gone}_000001.mp4,dog barking"])
  second = write_lines(work / "second.csv", [f"{ytids[t]}_000001.mp4,dog barking" for t in ("gkeep", "gnew")])
  common = ["--url_template", url_template, *FAST_BUILD_ARGS, IN_MEMORY]
  dirs = {"A": gcs.url("vggsound", "A"), "B": gcs.url("vggsound", "B")}
  manifests = {
      "A": build_vggsound.run(["--file_list", first, "--output_dir", dirs["A"], "--media_dir", str(work / "m"),
                               *common]),
  }
  manifests["B"] = build_vggsound.run(["--file_list", second, "--output_dir", dirs["B"], "--media_dir",
                                       str(work / "m2"), "--previous_build", dirs["A"], *common])
  return dirs, manifests, ytids, gone


def test_a_build_writes_every_file_to_gs(gcs_builds, source_media):
  dirs, manifests, ytids, gone = gcs_builds
  manifest = read_manifest(dirs["A"])
  assert manifest == manifests["A"]
  assert manifest.counts.failed_by_reason == {"permanent/http_404": 1}
  names = [path.rsplit("/", 1)[1] for path in files.list_files(dirs["A"])]
  assert set(names) >= {"manifest.json", "label_map.json", "requests.jsonl.gz", "test-00000-of-00001",
                        "test-00000-of-00001.array_record"}
  assert not [name for name in names if files.INCOMPLETE_MARKER in name]
  assert files.list_files(files.join(dirs["A"], "staging")) == []  # every staged record went into its shard
  tfrecord = list(records.read_tfrecord(files.join(dirs["A"], "test-00000-of-00001")))
  assert records.read_array_record(files.join(dirs["A"], "test-00000-of-00001.array_record")) == tfrecord
  [record] = [records.decode(s) for s in tfrecord]
  assert_frames_match(record, source_media.av_mp4, 1.0, 11.0)
  ledger = read_ledger(files.join(dirs["A"], "ledger"))
  assert ledger[f"yt_{gone}_000001000"].reason == "http_404"


def test_a_refresh_from_gs_into_gs_carries_clips_over(gcs_builds, media_server):
  dirs, manifests, ytids, _ = gcs_builds
  report = files.read_json(files.join(dirs["B"], "refresh_report.json"))
  assert report["counts"]["kept"] == 1 and report["counts"]["new"] == 1
  assert manifests["B"].previous_build == dirs["A"]
  assert manifests["B"].counts.written == 2


def test_a_gs_build_that_died_before_its_manifest_resumes_from_gs(gcs_builds, media_server, tmp_path, url_template):
  dirs, manifests, ytids, gone = gcs_builds
  shard = files.join(dirs["A"], "test-00000-of-00001")
  before_bytes = files.read_bytes(shard)
  files.delete(files.join(dirs["A"], "manifest.json"))  # as if the job died after writing its shard
  requested = media_server.request_count(f"{ytids['gkeep']}.mp4")
  file_list = write_lines(tmp_path / "first.csv", [f"{ytids['gkeep']}_000001.mp4,dog barking",
                                                   f"{gone}_000001.mp4,dog barking"])
  manifest = build_vggsound.run(["--file_list", file_list, "--output_dir", dirs["A"], "--media_dir",
                                 str(tmp_path / "fresh_disk"), "--url_template", url_template, *FAST_BUILD_ARGS,
                                 IN_MEMORY])
  assert media_server.request_count(f"{ytids['gkeep']}.mp4") == requested  # read back from gs://, not fetched
  assert manifest.counts == manifests["A"].counts and files.read_bytes(shard) == before_bytes
