r"""Classifies any video with a trained or imported MBT: the top-k labels of each input.

    python -m trainer.predict --config trainer/configs/vggsound.py --checkpoint runs/vggsound \
        --build builds/vggsound/train clip.mp4
    python -m trainer.predict --config trainer/configs/scenic_mbt_b16x2.py --checkpoint runs/scenic/as500k \
        clip.mp4@30-40 https://example.org/talk.webm@0-10 yt:dQw4w9WgXcQ@42-52 --top_k 3 --json

INPUTs (trainer/predict_inputs.py): a local media file, an http(s) URL (FFmpeg
reads it directly) or a YouTube id (yt:ID, fetched with yt-dlp), each with an
optional span in seconds, INPUT@START-END or INPUT@START; without one, the
whole media (at most --max_seconds).

Each input goes the way a clip goes through a build and an evaluation: the
builds' decoder (shared/media/decode.py: 25 fps frames, 16 kHz mono audio) and
log-mel (shared/media/logmel.py), one record (shared/records.py), then the
evaluation's preprocessing (trainer/data/preprocess.py: short-side resize,
centre crop, the window's frames and log-mel rows, normalisation) and
multi-crop test: config.data.num_test_crops windows spread over a clip longer
than the window (4 in the paper), one window otherwise, logits averaged.
Scores are sigmoids for AudioSet (multi-label), softmaxes otherwise. Media
without an audio stream is read as silence and media without a video stream
as black frames, as a build of local files stores them (the output names the
missing stream); an input with none of the model's modalities is an error.

Labels and log-mel statistics, in this order:
  1. --build DIR: a build's manifest.json (its label map, log-mel mean and
     standard deviation, stored frame size);
  2. CHECKPOINT/label_map.json, stored with the checkpoint
     (trainer.import_scenic --label_map writes it), with the config's
     data.melspec_mean / data.melspec_std;
  3. the manifest of config.data.train_dir, the build the model learned from.
config.data.melspec_mean / melspec_std, when set, win over a manifest's.

Output: a table on stdout (--json: one JSON object per input per line);
progress on stderr. Exit status 0 when every input was classified, 1 when
some could not be read (each says why in its row), 2 for a wrong command.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from typing import Any, Mapping, Optional, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import ml_collections
import numpy as np

from shared import contract, files, records
from shared.layout import LABEL_MAP_NAME  # stored with a checkpoint by trainer.import_scenic, as a build stores it
from shared.media import decode, errors as media_errors
from trainer import evaluate
from trainer.data import input_pipeline, manifest as manifest_lib, preprocess, sampling
from trainer.models.config import RGB, SPECTROGRAM
from trainer.predict_inputs import DEFAULT_URL_TEMPLATE, YOUTUBE, InputError, MediaInput, fetch_youtube, \
    media_clock, parse_input

SINGLE_HEAD = ""  # the head name of single-head models in per-head results
MODALITY_STREAMS = {RGB: "video", SPECTROGRAM: "audio"}  # the stream each modality is read from


class PredictError(ValueError):
  """The checkpoint, its labels or its statistics cannot be used (the message says why)."""


@dataclasses.dataclass(frozen=True)
class InferenceData:
  """What a model needs besides its weights to read a new clip.

  Attributes:
    label_maps: head -> class names (SINGLE_HEAD for single-head models).
    melspec_mean: the log-mel mean the model was trained with.
    melspec_std: the log-mel standard deviation.
    frame_short_side: the short side frames are stored at (before the
      preprocessing's own resize), as in the build.
    source: where labels and statistics came from, in words.
  """

  label_maps: Mapping[str, tuple[str, ...]]
  melspec_mean: float
  melspec_std: float
  frame_short_side: int
  source: str


@dataclasses.dataclass
class Prediction:
  """The outcome for one input.

  Attributes:
    input: the INPUT as given.
    span_s: (start, end) read, in seconds of the source.
    crops: windows averaged.
    top: head -> [(class index, label, score), ...] best first.
    missing: the streams the media has not got ("audio": silence was read,
      "video": black frames), as a build records them (has_audio, has_video).
    error: why the input could not be classified (then `top` is empty).
  """

  input: str
  span_s: Optional[tuple[float, float]] = None
  crops: int = 0
  missing: tuple[str, ...] = ()
  top: dict[str, list[tuple[int, str, float]]] = dataclasses.field(default_factory=dict)
  error: Optional[str] = None

  def to_json_dict(self) -> dict[str, Any]:
    if self.error is not None:
      return {"input": self.input, "error": self.error}
    heads = {head or "predictions": [{"rank": rank, "index": index, "label": label, "score": round(score, 6)}
                                     for rank, (index, label, score) in enumerate(top, start=1)]
             for head, top in self.top.items()}
    return {"input": self.input, "span_s": list(self.span_s), "crops": self.crops, "missing": list(self.missing),
            **heads}


# ---------------------------------------------------------------------------
# Labels, statistics and the checkpoint.
# ---------------------------------------------------------------------------
def _label_maps_from_manifest(config, manifest: manifest_lib.BuildManifest) -> dict[str, tuple[str, ...]]:
  if config.model.class_heads:
    maps = {}
    for head in config.model.class_heads:
      label_map = manifest.head_label_map(head)
      if label_map is None:
        raise PredictError(f"{manifest.directory}: the build has no {head} label map")
      maps[head] = label_map.names
    return maps
  return {SINGLE_HEAD: manifest.label_map.names}


def inference_data(config: ml_collections.ConfigDict, checkpoint: str, build: Optional[str] = None) -> InferenceData:
  """Labels and log-mel statistics for `checkpoint` (see the module docstring for the order)."""
  mean, std = config.data.get("melspec_mean"), config.data.get("melspec_std")
  stored = files.join(checkpoint, LABEL_MAP_NAME)
  if build is None and files.exists(stored) and not config.model.class_heads:
    if mean is None or std is None:
      raise PredictError(f"{stored} gives the labels but the config sets no data.melspec_mean/melspec_std; "
                         "give --build (the training build) or set them")
    label_map = contract.LabelMap.from_json_dict(files.read_json(stored))
    data = InferenceData({SINGLE_HEAD: label_map.names}, float(mean), float(std), contract.FRAME_SHORT_SIDE,
                         f"labels from {stored}, log-mel statistics from the config")
  else:
    directory = build or config.data.get("train_dir")
    if not directory:
      raise PredictError(f"no labels: {checkpoint} has no {LABEL_MAP_NAME} and the config names no "
                         "data.train_dir; give --build DIR")
    try:
      manifest = manifest_lib.read_manifest(directory)
    except (manifest_lib.ManifestError, contract.ContractMismatchError) as error:
      raise PredictError(f"no labels: {checkpoint} has no {LABEL_MAP_NAME} and the build failed to read "
                         f"({error}); give --build DIR") from error
    short_side = manifest.manifest.build_options.get("frame_short_side", contract.FRAME_SHORT_SIDE)
    data = InferenceData(
        _label_maps_from_manifest(config, manifest),
        float(manifest.melspec_mean if mean is None else mean), float(manifest.melspec_std if std is None else std),
        int(short_side), f"labels and log-mel statistics from the build {directory}")
  expected = dict(config.model.class_heads) if config.model.class_heads else {SINGLE_HEAD: config.model.num_classes}
  for head, names in data.label_maps.items():
    if len(names) != expected[head]:
      raise PredictError(f"{data.source}: {len(names)} {head or 'class'} labels, the model has {expected[head]}")
  return data


def restore_model(config: ml_collections.ConfigDict, checkpoint: str, step: Optional[int] = None):
  """(model, params, step) from a workdir's checkpoints (the latest unless `step`)."""
  from trainer.models import build_model

  try:
    steps = evaluate.checkpoint_steps(checkpoint)
  except (FileNotFoundError, ValueError) as error:
    raise PredictError(f"cannot read checkpoints in {checkpoint}: {error}") from error
  if not steps:
    raise PredictError(f"no checkpoints in {checkpoint}/checkpoints")
  if step is None:
    step = steps[-1]
  elif step not in steps:
    raise PredictError(f"no checkpoint for step {step} in {checkpoint}; have {steps}")
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  params = evaluate.restore_params(checkpoint, step, NamedSharding(mesh, PartitionSpec()))
  return build_model(config.model), params, step


def test_preprocessor(config: ml_collections.ConfigDict, data: InferenceData, num_crops: int
                      ) -> preprocess.ClipPreprocessor:
  """The evaluation's preprocessing of `config`, with `num_crops` windows and no labels."""
  return preprocess.ClipPreprocessor(
      window=input_pipeline.window_spec(config),
      modalities=tuple(config.model.modalities),
      # An input has no label; multi-hot is the one label kind that takes none,
      # and the targets are never looked at.
      label_kind=preprocess.MULTI_HOT,
      num_classes=1,
      melspec_mean=data.melspec_mean,
      melspec_std=data.melspec_std,
      crop_size=config.model.image_size,
      min_resize=config.data.min_resize,
      num_test_crops=num_crops,
      flip=False,
      color_jitter=None,
      spec_augment=None,
  )


# ---------------------------------------------------------------------------
# One input: media -> record -> crops -> scores.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ClipRead:
  """An input's span decoded as a build decodes a clip.

  Attributes:
    serialized: the record a build would write for it (without labels).
    span_s: (start, end) in seconds of the source.
    num_frames: frames in the record.
    missing: the streams the media has not got ("audio", "video").
  """

  serialized: bytes
  span_s: tuple[float, float]
  num_frames: int
  missing: tuple[str, ...]


def read_clip(media: MediaInput, *, frame_short_side: int, url_template: str, max_seconds: float,
              work_dir: str) -> ClipRead:
  """Decodes an input's span as a build would."""
  location, clock_origin_s = media.location, None
  if media.kind == YOUTUBE:
    location = fetch_youtube(media, url_template, work_dir)
    if media.end_s is not None:
      # A section keeps the source's clock in its timestamps: decoded as the builds decode theirs.
      clock_origin_s = 0.0
  start, end = media.start_s, media.end_s
  if end is None:
    _, duration = media_clock(location)
    if duration is None:
      raise InputError(f"{media.text}: the media does not say how long it is; give a span, @START-END")
    end = duration
    if end - start > max_seconds:
      raise InputError(f"{media.text}: {end - start:.1f} s is more than --max_seconds={max_seconds:g}; "
                       "give a span, @START-END")
  options = decode.DecodeOptions(short_side=frame_short_side)
  try:
    # Audio alone is read as local-file builds read it: black frames, has_video False.
    decoded = decode.ClipDecoder(options).decode(location, start, end, clock_origin_s, require_video=False)
  except (media_errors.MediaError, media_errors.InvalidSpanError) as error:
    raise InputError(f"{media.text}: {error}") from error
  if decoded.decoded_duration_s <= 0:
    raise InputError(f"{media.text}: the media holds nothing in [{start:g}, {end:g}] s")
  # The record a build would write for this span (as the builds make theirs), without labels.
  record = decoded.to_record(clip_id="predict", dataset="predict", source_id=media.location, start_s=start, end_s=end)
  missing = tuple(name for name, present in (("audio", decoded.has_audio), ("video", decoded.has_video))
                  if not present)
  return ClipRead(records.encode(record), (start, end), len(decoded.jpeg_frames), missing)


def crops_for(config: ml_collections.ConfigDict, num_frames: int) -> int:
  """config.data.num_test_crops for a clip longer than the window, else one."""
  window = input_pipeline.window_spec(config)
  return config.data.num_test_crops if sampling.max_start(window, num_frames) > 0 else 1


def scores_of(label_kind: str, logits) -> dict[str, np.ndarray]:
  """head -> [C] scores from crop-averaged logits of one clip."""
  def score(x):
    x = np.asarray(x, np.float64)[0]
    if label_kind == preprocess.MULTI_HOT:
      return 1 / (1 + np.exp(-x))
    x = np.exp(x - x.max())
    return x / x.sum()

  if isinstance(logits, Mapping):
    return {head: score(value) for head, value in logits.items()}
  return {SINGLE_HEAD: score(logits)}


class Predictor:
  """A restored model with what it needs to classify new media.

  Args:
    config: the config the model was trained (or imported) with.
    checkpoint: the workdir holding checkpoints/.
    build: a build whose manifest gives labels and statistics (optional).
    step: the checkpoint step (default the latest).
  """

  def __init__(self, config: ml_collections.ConfigDict, checkpoint: str, *, build: Optional[str] = None,
               step: Optional[int] = None):
    self.config = config
    self.data = inference_data(config, checkpoint, build)
    self.model, self.params, self.step = restore_model(config, checkpoint, step)
    self.label_kind = input_pipeline.label_kind(config)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    self._test_step = evaluate.make_test_step(self.model, mesh)

  def logits(self, serialized: bytes, num_frames: int) -> tuple[Any, int]:
    """(crop-averaged logits [1, C] or {head: [1, C]}, crops) of one serialized record of `num_frames` frames."""
    crops = crops_for(self.config, num_frames)
    example = test_preprocessor(self.config, self.data, crops).test_example(serialized, 0)
    inputs = {m: x[None] for m, x in example["inputs"].items()}  # a batch of one clip, [1, K, ...]
    return jax.device_get(self._test_step(self.params, inputs)), crops

  def predict(self, text: str, *, top_k: int = 5, url_template: str = DEFAULT_URL_TEMPLATE,
              max_seconds: float = 120.0) -> Prediction:
    """Classifies one INPUT; a media problem becomes Prediction.error, never an exception."""
    try:
      media = parse_input(text)
      with tempfile.TemporaryDirectory(prefix="mbt_predict_") as work_dir:
        clip = read_clip(media, frame_short_side=self.data.frame_short_side, url_template=url_template,
                         max_seconds=max_seconds, work_dir=work_dir)
    except InputError as error:
      return Prediction(input=text, error=str(error))
    read = {MODALITY_STREAMS[m] for m in self.config.model.modalities} - set(clip.missing)
    if not read:
      return Prediction(input=text, error=f"{text}: the media has no {' or '.join(clip.missing)} stream, "
                                          f"and the model reads nothing else ({', '.join(self.config.model.modalities)})")
    logits, crops = self.logits(clip.serialized, clip.num_frames)
    prediction = Prediction(input=text, span_s=clip.span_s, crops=crops, missing=clip.missing)
    for head, scores in scores_of(self.label_kind, logits).items():
      names = self.data.label_maps[head]
      best = np.argsort(-scores, kind="stable")[:top_k]
      prediction.top[head] = [(int(i), names[i], float(scores[i])) for i in best]
    return prediction


# ---------------------------------------------------------------------------
# Output.
# ---------------------------------------------------------------------------
def format_table(predictions: Sequence[Prediction]) -> str:
  """One row per (input, head, rank); an input's name, span and crops on its first row."""
  rows = [("input", "span (s)", "crops", "head", "rank", "score", "label")]
  for p in predictions:
    if p.error is not None:
      rows.append((p.input, "-", "-", "", "", "", f"error: {p.error}"))
      continue
    first = True
    for head, top in p.top.items():
      for rank, (_, label, score) in enumerate(top, start=1):
        lead = (p.input, f"{p.span_s[0]:.2f}-{p.span_s[1]:.2f}", str(p.crops)) if first else ("", "", "")
        rows.append(lead + (head, str(rank), f"{score:.4f}", label))
        first = False
  if all(not row[3] for row in rows[1:]):  # single-head: no head column
    rows = [row[:3] + row[4:] for row in rows]
  widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
  return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                   for row in rows)


def run(config: ml_collections.ConfigDict, checkpoint: str, inputs: Sequence[str], *, build: Optional[str] = None,
        step: Optional[int] = None, top_k: int = 5, url_template: str = DEFAULT_URL_TEMPLATE,
        max_seconds: float = 120.0, as_json: bool = False, out=sys.stdout, log=sys.stderr) -> int:
  """Classifies `inputs` and writes the results; returns the exit status (0, or 1 if some failed)."""
  started = time.monotonic()
  predictor = Predictor(config, checkpoint, build=build, step=step)
  print(f"predict: step {predictor.step} of {checkpoint}; {predictor.data.source}", file=log, flush=True)
  predictions = []
  for text in inputs:
    prediction = predictor.predict(text, top_k=top_k, url_template=url_template, max_seconds=max_seconds)
    if prediction.error is not None:
      print(f"predict: cannot classify {prediction.error}", file=log, flush=True)
    else:
      without = "".join(f", no {stream} stream ({'black frames' if stream == 'video' else 'silence'})"
                        for stream in prediction.missing)
      print(f"predict: {text}: {prediction.crops} crop(s) of {prediction.span_s[0]:g}-{prediction.span_s[1]:g} s"
            f"{without}", file=log, flush=True)
    predictions.append(prediction)
    if as_json:
      print(json.dumps(prediction.to_json_dict()), file=out, flush=True)
  if not as_json:
    print(format_table(predictions), file=out, flush=True)
  failed = sum(p.error is not None for p in predictions)
  print(f"predict: {len(predictions) - failed} of {len(predictions)} inputs classified in "
        f"{time.monotonic() - started:.1f} s", file=log, flush=True)
  return 1 if failed else 0


def main(argv) -> None:
  from absl import app, flags, logging

  logging.set_verbosity(logging.WARNING)  # orbax reports every file it opens at INFO
  values = flags.FLAGS
  if len(argv) < 2:
    raise app.UsageError("give at least one INPUT (a media file, an http(s) URL or yt:VIDEO_ID, optionally "
                         "@START-END)")
  try:
    status = run(values.config, values.checkpoint, argv[1:], build=values.build, step=values.step,
                 top_k=values.top_k, url_template=values.url_template, max_seconds=values.max_seconds,
                 as_json=values.json)
  except PredictError as error:
    print(f"predict: {error}", file=sys.stderr)
    status = 2
  sys.exit(status)


if __name__ == "__main__":
  from absl import flags

  from trainer import entry_point
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", None, "The config the model was trained or imported with.",
                                  lock_config=True)
  flags.DEFINE_string("checkpoint", None, "The workdir holding checkpoints/ (trainer.train's or import_scenic's).")
  flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
  flags.DEFINE_string("build", None, "A build directory whose manifest gives labels and log-mel statistics.")
  flags.DEFINE_integer("top_k", 5, "Labels shown per input (per head).", lower_bound=1)
  flags.DEFINE_bool("json", False, "One JSON object per input per line instead of a table.")
  flags.DEFINE_string("url_template", DEFAULT_URL_TEMPLATE, "Where YouTube ids are fetched from; {ytid} is the id.")
  flags.DEFINE_float("max_seconds", 120.0, "Longest span read without an explicit @START-END.")
  flags.mark_flags_as_required(["config", "checkpoint"])
  entry_point.run(main)
