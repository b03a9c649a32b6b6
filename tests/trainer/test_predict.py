"""trainer.predict on real media: files, URLs and YouTube ids from the local media server.

The model is the tiny config's with random weights, saved as an orbax
checkpoint the way trainer.import_scenic saves one. A prediction must score a
span exactly as the evaluation scores the clip a real build makes of that span
(pipelines.features.make_record, then trainer.data's test pipeline).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import imageio_ffmpeg
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pipelines.features import FetchedClip, make_record
from pipelines.sources.rows import ClipRequest
from shared import contract
from shared.media import decode, generator
from testsupport.media_server import MediaServer
from trainer import evaluate, import_scenic, predict
from trainer.configs import tiny
from trainer.data import input_pipeline, synthetic
from trainer.models import build_model, input_shapes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ("red-low", "red-high", "blue-low", "blue-high")
MEL_MEAN, MEL_STD = -4.0, 3.0


def tiny_config():
  config = tiny.get_config()
  config.data.melspec_mean = MEL_MEAN
  config.data.melspec_std = MEL_STD
  return config


def random_params(config, seed=0):
  model = build_model(config.model)
  inputs = {m: jax.ShapeDtypeStruct(s, np.float32) for m, s in input_shapes(config.model, 1).items()}
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), inputs)["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda leaf: (rng.normal(size=leaf.shape) / np.sqrt(max(leaf.shape[0], 1))).astype(np.float32)
                      if len(leaf.shape) > 1 else (1 + 0.1 * rng.normal(size=leaf.shape)).astype(np.float32), shapes)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  """A workdir with one checkpoint (step 7) and its label map."""
  workdir = str(tmp_path_factory.mktemp("predict_checkpoint"))
  import_scenic.save_parameters(workdir, 7, random_params(tiny_config()))
  with open(os.path.join(workdir, predict.LABEL_MAP_NAME), "w") as f:
    json.dump(contract.LabelMap.from_names("vggsound", NAMES).to_json_dict(), f)
  return workdir


@pytest.fixture(scope="module")
def media(tmp_path_factory):
  """Generated clips (real FFmpeg encodes) and a text file posing as media."""
  root = tmp_path_factory.mktemp("predict_media")
  spec = dict(width=160, height=120, fps=30.0, audio_sample_rate=16_000, audio_channels=1)
  made = generator.write_clip(str(root / "made.mp4"), generator.ClipSpec(duration_s=4.0, **spec)).path
  # A keyframe every 0.5 s, so that a section download snaps to one well inside the clip.
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", made, "-c:v", "libx264", "-g", "15",
                  "-c:a", "copy", str(root / "long.mp4")], check=True, timeout=120)
  paths = {
      "long": str(root / "long.mp4"),
      "short": generator.write_clip(str(root / "short.webm"),
                                    generator.ClipSpec(duration_s=0.6, container="webm", **spec)).path,
  }
  paths["audio"] = generator.write_clip(str(root / "audio.m4a"),
                                       generator.ClipSpec(duration_s=2.0, container="mp4", video=False, **spec)).path
  (root / "fake.mp4").write_text("<html><body>This video is not available.</body></html>\n")
  paths["fake"] = str(root / "fake.mp4")
  return paths


@pytest.fixture(scope="module")
def predictor(checkpoint):
  return predict.Predictor(tiny_config(), checkpoint)


def evaluation_scores(config, checkpoint: str, path: str, start: float, end: float, tmp_path,
                      require_video: bool = True) -> np.ndarray:
  """Softmax of the evaluation's crop-averaged logits for the clip a build makes of [start, end)."""
  request = ClipRequest(dataset="vggsound", clip_id="yt_test0000000_000000500", source_id="test0000000",
                        start_s=start, end_s=end, label_indices=(0,), label_names=(NAMES[0],))
  decoded = decode.ClipDecoder().decode(path, start, end, require_video=require_video)
  record = make_record(FetchedClip(request=request, media_path=path, media_start_s=start), decoded)
  build = str(tmp_path / "build")
  synthetic.write_build(build, [record], dataset="vggsound", split="test",
                        label_map=contract.LabelMap.from_names("vggsound", NAMES), num_shards=1)
  _, _, batches = input_pipeline.test_batches(config, build, local_batch_size=1)
  batch = next(iter(batches))
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  params = evaluate.restore_params(checkpoint, 7, NamedSharding(mesh, PartitionSpec()))
  step = evaluate.make_test_step(build_model(config.model), mesh)
  logits = np.asarray(jax.device_get(step(params, batch["inputs"])), np.float64)[0]
  return np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()


def by_label(prediction: predict.Prediction) -> dict[str, float]:
  return {label: score for _, label, score in prediction.top[predict.SINGLE_HEAD]}


def test_a_span_is_scored_as_the_evaluation_scores_its_built_clip(predictor, checkpoint, media, tmp_path):
  prediction = predictor.predict(f"{media['long']}@0.5-3.5", top_k=4)
  assert prediction.error is None and prediction.span_s == (0.5, 3.5)
  assert prediction.crops == 4  # 3 s against a 0.64 s window: the evaluation's 4 crops
  expected = evaluation_scores(tiny_config(), checkpoint, media["long"], 0.5, 3.5, tmp_path)
  scores = by_label(prediction)
  np.testing.assert_allclose([scores[name] for name in NAMES], expected, rtol=1e-5, atol=1e-6)
  assert [label for _, label, _ in prediction.top[""]] == [NAMES[i] for i in np.argsort(-expected, kind="stable")]
  assert len(set(np.round(expected, 4))) > 1  # the scores are not all equal, so the order above means something


def test_whole_file_short_clip_takes_one_crop(predictor, media):
  prediction = predictor.predict(media["short"], top_k=2)
  assert prediction.error is None, prediction.error
  assert prediction.crops == 1 and prediction.span_s[0] == 0.0 and prediction.span_s[1] == pytest.approx(0.6, abs=0.05)
  assert len(prediction.top[""]) == 2


def test_audio_alone_is_scored_as_a_local_files_build_stores_it(predictor, checkpoint, media, tmp_path):
  # No video stream: black frames and has_video False, the record a build of local files writes for it.
  prediction = predictor.predict(f"{media['audio']}@0.2-1.8", top_k=4)
  assert prediction.error is None, prediction.error
  assert prediction.missing == ("video",) and prediction.to_json_dict()["missing"] == ["video"]
  expected = evaluation_scores(tiny_config(), checkpoint, media["audio"], 0.2, 1.8, tmp_path, require_video=False)
  scores = by_label(prediction)
  np.testing.assert_allclose([scores[name] for name in NAMES], expected, rtol=1e-5, atol=1e-6)


def test_media_without_any_of_the_models_modalities_is_an_error(media, tmp_path):
  config = tiny.get_config("vggsound,video")
  config.data.melspec_mean, config.data.melspec_std = MEL_MEAN, MEL_STD
  workdir = str(tmp_path / "video_only")
  import_scenic.save_parameters(workdir, 1, random_params(config))
  with open(os.path.join(workdir, predict.LABEL_MAP_NAME), "w") as f:
    json.dump(contract.LabelMap.from_names("vggsound", NAMES).to_json_dict(), f)
  prediction = predict.Predictor(config, workdir).predict(media["audio"])
  assert prediction.top == {} and "no video stream" in prediction.error and "rgb" in prediction.error


def test_url_and_youtube_id_from_the_local_server_score_like_the_file(predictor, media):
  # The section fetched for 2.2-3.7 s starts at the keyframe at 1.0 s: the file's clock must be taken into account.
  local = by_label(predictor.predict(f"{media['long']}@2.2-3.7", top_k=4))
  with MediaServer(os.path.dirname(media["long"])) as server:
    server.alias("-4gqARaEJE0", "long.mp4")
    url = predictor.predict(f"{server.url('long.mp4')}@2.2-3.7", top_k=4)
    youtube = predictor.predict("yt:-4gqARaEJE0@2.2-3.7", top_k=4, url_template=server.base_url + "/{ytid}")
    whole = predictor.predict("yt:-4gqARaEJE0", top_k=4, url_template=server.base_url + "/{ytid}")
  for prediction in (url, youtube):
    assert prediction.error is None, prediction.error
    scores = by_label(prediction)
    np.testing.assert_allclose([scores[n] for n in NAMES], [local[n] for n in NAMES], rtol=1e-3, atol=1e-4)
  assert whole.error is None and whole.span_s[1] == pytest.approx(4.0, abs=0.1) and whole.crops == 4


def test_media_it_cannot_read_gives_clear_errors_and_status_1(checkpoint, media):
  out, log = io.StringIO(), io.StringIO()
  with MediaServer(os.path.dirname(media["long"])) as server:
    inputs = [media["fake"], os.path.join(os.path.dirname(media["long"]), "gone.mp4"), server.url("gone.mp4"),
              f"{media['long']}@10-12", "yt:abcdefghijk"]
    status = predict.run(tiny_config(), checkpoint, inputs, url_template=server.base_url + "/{ytid}", out=out,
                         log=log, as_json=True)
  assert status == 1
  lines = [json.loads(line) for line in out.getvalue().splitlines()]
  assert [line["input"] for line in lines] == inputs
  errors = [line["error"] for line in lines]
  assert "fake.mp4" in errors[0] and "media" in errors[0]
  assert "no such file" in errors[1]
  assert "gone.mp4" in errors[2]
  assert "nothing" in errors[3]  # the span lies past the end of the 4 s clip
  assert "yt-dlp could not fetch" in errors[4] and "404" in errors[4]
  assert "0 of 5 inputs classified" in log.getvalue()


def test_table_and_labels_from_a_build(checkpoint, media, tmp_path):
  """No label map stored with the checkpoint is needed when a build is given (its manifest has one)."""
  build = str(tmp_path / "build")
  synthetic.write_synthetic_build(build, dataset="vggsound", split="train", num_clips=4, num_classes=4, seconds=1.0)
  config = tiny.get_config()  # no melspec_mean/std: the build's
  out = io.StringIO()
  status = predict.run(config, checkpoint, [f"{media['long']}@0-2"], build=build, top_k=3, out=out, log=io.StringIO())
  assert status == 0
  table = out.getvalue().splitlines()
  assert table[0].split() == ["input", "span", "(s)", "crops", "rank", "score", "label"]
  assert len(table) == 4 and table[1].split()[1:3] == ["0.00-2.00", "4"]
  assert {row.split()[-1] for row in table[1:]} <= {f"class_{i}" for i in range(4)}


def test_without_labels_the_error_says_where_it_looked(tmp_path):
  workdir = str(tmp_path / "bare")
  import_scenic.save_parameters(workdir, 1, random_params(tiny_config()))
  config = tiny_config()
  config.data.train_dir = str(tmp_path / "no_build")
  with pytest.raises(predict.PredictError, match="label_map.json.*--build"):
    predict.Predictor(config, workdir)


def test_command_line_json_lines(checkpoint, media):
  command = [sys.executable, "-m", "trainer.predict", f"--config={REPO}/trainer/configs/tiny.py",
             f"--config.data.melspec_mean={MEL_MEAN}", f"--config.data.melspec_std={MEL_STD}",
             f"--checkpoint={checkpoint}", "--json", "--top_k=2", f"{media['long']}@0.5-3.5"]
  done = subprocess.run(command, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True,
                        timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  line = json.loads(done.stdout.strip().splitlines()[-1])
  assert line["crops"] == 4 and [p["rank"] for p in line["predictions"]] == [1, 2]
  assert line["predictions"][0]["label"] in NAMES
  assert "1 of 1 inputs classified" in done.stderr
