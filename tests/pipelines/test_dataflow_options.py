"""The builds on Dataflow, offline: options pass through, the graph serializes, Dataflow translates the job.

Nothing is submitted and nothing leaves the machine. Beam's own Dataflow
tests run the DataflowRunner with --dry_run (it builds the job and stops
before the service) and --no_auth; --dry_run also skips the GCS soft-delete
probe that pipeline validation makes for gs:// locations (without it,
constructing the pipeline waits 120 s on the network here).
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions, StandardOptions, WorkerOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.dataflow.internal import apiclient
from apache_beam.utils import proto_utils

from pipelines import build, build_cli, build_vggsound, fetch
from pipelines.sources.rows import ClipRequest
from shared import contract

from .conftest import write_lines

# The brief's flags, as a user types them.
DATAFLOW_FLAGS = ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/tmp",
                  "--sdk_container_image=img"]
# Names the Dataflow validator accepts (it refuses project "p" and bucket "b"), plus the offline switches.
OFFLINE_DATAFLOW_FLAGS = ["--runner=DataflowRunner", "--project=mbt-project", "--region=us-central1",
                          "--temp_location=gs://mbt-bucket/tmp", "--sdk_container_image=img", "--num_workers=3",
                          "--dry_run=True", "--no_auth", "--sdk_location=container"]
# Steps of the build, by full label, that the Dataflow graph must hold.
EXPECTED_STEPS = [
    "Build_vggsound_test/ReadClipRequests",
    "Build_vggsound_test/Fetch/SpreadOverWorkers",
    "Build_vggsound_test/Fetch/DownloadSection",
    "Build_vggsound_test/ExtractFeatures/DecodeAndEncode",
    "Build_vggsound_test/WriteShards/GroupByShard",
    "Build_vggsound_test/WriteShards/WriteShardFiles",
    "Build_vggsound_test/RecordFailuresInLedger",
    "Build_vggsound_test/WriteManifest/CheckCountsAndWriteManifest",
]


@pytest.fixture
def file_list(tmp_path) -> str:
  return write_lines(tmp_path / "test.csv",
                     ["--4gqARaEJE_000000.mp4,dog barking", "abcdefghijk_000030.mp4,cat meowing"])


def _build_graph(file_list: str, flags, tmp_path) -> beam.Pipeline:
  """The vggsound build's pipeline as build_vggsound.run makes it, without running it."""
  args, beam_args = build_cli.parse_args(build_vggsound.make_parser(), [
      "--file_list", file_list, "--output_dir", "gs://mbt-bucket/vggsound/test", "--media_dir", str(tmp_path / "m"),
      *flags])
  split = build_vggsound.load_split(args)
  plan = build.BuildPlan(split=split, options=build.BuildOptions.from_args(args))  # no I/O: gs:// is offline
  pipeline = beam.Pipeline(options=build.pipeline_options(beam_args))
  _ = pipeline | f"Build_{split.dataset}_{split.split}" >> build.BuildSplit(
      plan, fetch.FetchFromYouTube(build_cli.download_config(args), plan.layout.ledger_dir))
  return pipeline


def test_dataflow_flags_pass_through_untouched():
  options = build.pipeline_options(DATAFLOW_FLAGS)
  assert options.view_as(StandardOptions).runner == "DataflowRunner"
  assert not build.is_local(options)
  cloud = options.view_as(GoogleCloudOptions)
  assert (cloud.project, cloud.region, cloud.temp_location) == ("p", "r", "gs://b/tmp")
  assert options.view_as(WorkerOptions).sdk_container_image == "img"
  # None of the local runner's defaults are added to a Dataflow run.
  assert "direct_num_workers" not in options.get_all_options(drop_default=True)
  assert "direct_running_mode" not in options.get_all_options(drop_default=True)


def test_entry_point_leaves_beam_flags_to_beam():
  args, beam_args = build_cli.parse_args(build_vggsound.make_parser(), [
      "--file_list", "x.csv", "--output_dir", "gs://b/out", *DATAFLOW_FLAGS])
  assert beam_args == DATAFLOW_FLAGS
  assert args.output_dir == "gs://b/out"


def test_graph_serializes_to_a_runner_api_proto_with_every_step(file_list, tmp_path):
  pipeline = _build_graph(file_list, OFFLINE_DATAFLOW_FLAGS, tmp_path)
  proto = pipeline.to_runner_api()
  labels = {transform.unique_name for transform in proto.components.transforms.values()}
  assert set(EXPECTED_STEPS) <= labels
  assert proto.root_transform_ids


def test_dataflow_translates_the_job_without_submitting_it(file_list, tmp_path):
  pipeline = _build_graph(file_list, OFFLINE_DATAFLOW_FLAGS, tmp_path)
  result = pipeline.run()  # --dry_run: the DataflowRunner builds the job and stops

  assert result.state == "DONE"
  runner = pipeline.runner
  dataflow_proto = runner.proto_pipeline  # after Dataflow's overrides and environment resolution
  labels = {transform.unique_name for transform in dataflow_proto.components.transforms.values()}
  assert set(EXPECTED_STEPS) <= labels
  images = {proto_utils.parse_Bytes(env.payload, beam_runner_api_pb2.DockerPayload).container_image
            for env in dataflow_proto.components.environments.values()}
  assert images == {"img"}
  assert result.job.proto.type_.name == "JOB_TYPE_BATCH"

  # The job environment the service would receive: worker pool, image, options.
  environment = apiclient.Environment(
      packages=[], options=result.job.options, environment_version="8",
      proto_pipeline_staged_url="gs://mbt-bucket/tmp/staging/pipeline.pb", proto_pipeline=dataflow_proto).proto
  [pool] = environment.worker_pools
  assert pool.worker_harness_container_image == "img"
  assert pool.num_workers == 3
  assert environment.temp_storage_prefix.startswith("storage.googleapis.com/mbt-bucket/tmp/")
  sent = dict(environment.sdk_pipeline_options["options"])
  assert (sent["project"], sent["region"], sent["sdk_container_image"]) == ("mbt-project", "us-central1", "img")


def test_dataflow_runner_dofns_survive_pickling(file_list, tmp_path):
  # Workers rebuild every DoFn from its pickled payload in the job.
  from apache_beam.internal import pickler

  proto = _build_graph(file_list, OFFLINE_DATAFLOW_FLAGS, tmp_path).to_runner_api()
  rebuilt = []
  for transform in proto.components.transforms.values():
    if transform.spec.urn == "beam:transform:pardo:v1":
      payload = proto_utils.parse_Bytes(transform.spec.payload, beam_runner_api_pb2.ParDoPayload)
      if payload.do_fn.payload:  # Beam's own primitives carry a URN instead
        rebuilt.append(type(pickler.loads(payload.do_fn.payload)[0]).__name__)
  assert {"_DownloadFn", "ExtractFeaturesFn", "_WriteShardFn", "_WriteLedgerFn"} <= set(rebuilt)


def test_a_build_from_videos_on_gs_translates_for_dataflow(file_list, tmp_path):
  # Local files first, downloads for the rest: both steps are in the job, and their DoFns travel to workers.
  from apache_beam.internal import pickler

  args, beam_args = build_cli.parse_args(build_vggsound.make_parser(), [
      "--file_list", file_list, "--output_dir", "gs://mbt-bucket/vggsound/test", "--media_dir", str(tmp_path / "m"),
      "--videos_dir", "gs://mbt-bucket/vggsound/video", *OFFLINE_DATAFLOW_FLAGS])
  assert args.sources == ("local", "youtube")
  local, fetch_step = build_cli.clip_sources(args)
  plan = build.BuildPlan(split=build_vggsound.load_split(args), options=build.BuildOptions.from_args(args))
  pipeline = beam.Pipeline(options=build.pipeline_options(beam_args))
  _ = pipeline | "Build_vggsound_test" >> build.BuildSplit(plan, fetch_step, local)
  result = pipeline.run()  # --dry_run: translated for the service, not submitted
  assert result.state == "DONE"
  proto = pipeline.runner.proto_pipeline
  labels = {transform.unique_name for transform in proto.components.transforms.values()}
  assert {"Build_vggsound_test/FromLocalFiles/DecodeLocalFile", *EXPECTED_STEPS} <= labels
  rebuilt = set()
  for transform in proto.components.transforms.values():
    if transform.spec.urn == "beam:transform:pardo:v1":
      payload = proto_utils.parse_Bytes(transform.spec.payload, beam_runner_api_pb2.ParDoPayload)
      if payload.do_fn.payload:
        rebuilt.add(type(pickler.loads(payload.do_fn.payload)[0]).__name__)
  assert {"_RecordFromLocalFileFn", "_DownloadFn", "ExtractFeaturesFn"} <= rebuilt


def _dataflow_graph_bytes(num_requests: int, tmp_path) -> int:
  """The serialized size of the Dataflow job graph of a build asking for `num_requests` clips."""
  labels = contract.LabelMap.from_names("audioset", ["Speech"])
  requests = tuple(ClipRequest(dataset="audioset", clip_id=f"yt_{i:011d}_000000000", source_id=f"{i:011d}",
                               start_s=0.0, end_s=10.0, label_indices=(0,), label_names=("Speech",))
                   for i in range(num_requests))
  split = build.SplitToBuild(dataset="audioset", split="train", label_map=labels, requests=requests)
  args, beam_args = build_cli.parse_args(build_vggsound.make_parser(), [
      "--file_list", "unused.csv", "--output_dir", "gs://mbt-bucket/audioset/train", "--media_dir",
      str(tmp_path / "m"), *OFFLINE_DATAFLOW_FLAGS])
  plan = build.BuildPlan(split=split, options=build.BuildOptions.from_args(args))
  pipeline = beam.Pipeline(options=build.pipeline_options(beam_args))
  _ = pipeline | "Build" >> build.BuildSplit(
      plan, fetch.FetchFromYouTube(build_cli.download_config(args), plan.layout.ledger_dir))
  pipeline.run()  # --dry_run: translated for the service, not submitted
  return len(pipeline.runner.proto_pipeline.SerializeToString())


def test_the_job_graph_does_not_grow_with_the_clips(tmp_path):
  # Dataflow refuses job requests over 20 MB; the clips travel in the work list file instead.
  small, large = _dataflow_graph_bytes(1_000, tmp_path), _dataflow_graph_bytes(500_000, tmp_path)
  assert large < 1_000_000
  assert abs(large - small) <= 0.01 * small, (small, large)


@pytest.mark.parametrize("typo", [["--clips_per_shards", "8"], ["--clip", "3"], ["--num_worker=3"]])
def test_a_flag_nobody_knows_is_an_error_naming_it(typo, capsys):
  with pytest.raises(SystemExit) as stopped:
    build_cli.parse_args(build_vggsound.make_parser(), ["--file_list", "x.csv", "--output_dir", "o", *typo])
  assert stopped.value.code == 2
  assert f"unrecognized arguments: {' '.join(typo)}" in capsys.readouterr().err


def test_class_labels_do_not_hide_beams_job_labels():
  from pipelines import build_audioset

  args, beam_args = build_cli.parse_args(build_audioset.make_parser(), [
      "--split", "eval", "--segments", "s.csv", "--labels", "class_labels_indices.csv", "--output_dir", "o",
      "--labels", "team=av", "--label", "cost=research", *DATAFLOW_FLAGS])
  assert args.class_labels == "class_labels_indices.csv"  # the name the docs used still works
  assert "--labels=team=av" in beam_args and "--label" in beam_args
  assert build.pipeline_options(beam_args).view_as(GoogleCloudOptions).labels == ["cost=research", "team=av"]
