"""The build layout: every path of a build, local or gs://, from one place."""

import pytest

from shared import layout


@pytest.mark.parametrize("root, sep", [("/data/builds/test", "/"), ("gs://bucket/vggsound/test/", "/")])
def test_every_path_of_a_build(root, sep):
  build = layout.BuildLayout(root)
  base = root.rstrip("/")
  assert build.manifest == f"{base}{sep}manifest.json"
  assert build.label_map == f"{base}{sep}label_map.json"
  assert build.ledger_dir == f"{base}{sep}ledger"
  assert build.refresh_report == f"{base}{sep}refresh_report.json"
  assert build.as500k_report == f"{base}{sep}as500k_report.json"
  assert build.media_dir == f"{base}{sep}media"
  assert build.staged_record("yt_abc_000001000") == f"{base}{sep}staging{sep}yt_abc_000001000.record"
  assert build.shard("test", 2, 16, layout.TFRECORD) == f"{base}{sep}test-00002-of-00016"
  assert build.shard("test", 2, 16, layout.ARRAYRECORD) == f"{base}{sep}test-00002-of-00016.array_record"


def test_unknown_formats_are_refused():
  with pytest.raises(layout.UnknownFormatError, match="parquet"):
    layout.shard_file_name("test", 0, 1, "parquet")
