"""The data contract between the pipelines and the trainer.

Every number and name that both halves of the project must agree on lives here
and only here: the media rates, the log-mel front end, the frame size policy,
the feature keys of the on-disk records, their shapes, the label-map format
and the schema version. The pipelines write what this module says; the trainer
refuses shards whose recorded contract differs from :func:`contract_parameters`.

The record layout is the one Scenic's MBT reader expects (three keys, below);
everything else is ours and free to add.

The clock. A clip is a span [s, e) of a source, in seconds of the source's own
clock counted from its first timestamp: the container's start time (FFmpeg's
earliest presentation of any stream), where players and ``ffmpeg -ss`` count
from too, whatever the source's raw timestamps (an MPEG-PS file made by FFmpeg
starts at 0.54 s, an MP4 wherever its edit list says). Frame k of the span is
the source frame shown at s + k / VIDEO_FPS on that clock, and audio sample 0
is at s. This holds on every path a build takes: a local video is decoded on
its own clock, and a downloaded section keeps its source's.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Mapping, Sequence

# Bump when the meaning or layout of a record changes; readers refuse others.
SCHEMA_VERSION = 1

# ---------------------------------------------------------------------------
# Media rates.
# ---------------------------------------------------------------------------
VIDEO_FPS = 25
AUDIO_SAMPLE_RATE = 16_000
AUDIO_CHANNELS = 1

# ---------------------------------------------------------------------------
# Log-mel front end: Kaldi fbank as torchaudio.compliance.kaldi.fbank computes
# it with these arguments, on the waveform with its mean removed (SPEC §3).
# ---------------------------------------------------------------------------
MEL_NUM_BINS = 128
MEL_FRAME_LENGTH_MS = 25.0
MEL_FRAME_SHIFT_MS = 10.0
MEL_WINDOW = "hamming"
MEL_LOW_FREQ_HZ = 20.0
MEL_HIGH_FREQ_HZ = 0.0  # Kaldi convention: <= 0 means Nyquist + value.
MEL_PREEMPHASIS = 0.97
MEL_REMOVE_DC_OFFSET = True
MEL_HTK_COMPAT = True
MEL_SNIP_EDGES = False
MEL_DITHER = 0.0
MEL_ROUND_TO_POWER_OF_TWO = True

MEL_FRAME_LENGTH_SAMPLES = AUDIO_SAMPLE_RATE * int(MEL_FRAME_LENGTH_MS) // 1000  # 400
MEL_FRAME_SHIFT_SAMPLES = AUDIO_SAMPLE_RATE * int(MEL_FRAME_SHIFT_MS) // 1000  # 160
MEL_FRAMES_PER_SECOND = AUDIO_SAMPLE_RATE // MEL_FRAME_SHIFT_SAMPLES  # 100

# One record step of the spectrogram feature list holds one second of log-mel.
MELSPEC_STEP_ROWS = MEL_FRAMES_PER_SECOND
MELSPEC_STEP_FLOATS = MELSPEC_STEP_ROWS * MEL_NUM_BINS  # 12800

# ---------------------------------------------------------------------------
# Frame policy: every 25 fps frame is resized so its short side is this many
# pixels (aspect kept) and stored as a JPEG of this quality.
# ---------------------------------------------------------------------------
FRAME_SHORT_SIDE = 256
JPEG_QUALITY = 90

# ---------------------------------------------------------------------------
# Feature keys. The first three are what Scenic's MBT reader reads.
# ---------------------------------------------------------------------------
IMAGE_KEY = "image/encoded"  # feature list, one JPEG per 25 fps frame
MELSPEC_KEY = "melspec/feature/floats"  # feature list, one second per step
LABEL_INDEX_KEY = "clip/label/index"  # context int64 list, multi-hot indices

SCENIC_KEYS = (IMAGE_KEY, MELSPEC_KEY, LABEL_INDEX_KEY)

# Our own context keys.
SCHEMA_VERSION_KEY = "clip/schema_version"  # int64
DATASET_KEY = "clip/dataset"  # bytes, e.g. b"vggsound"
CLIP_ID_KEY = "clip/id"  # bytes, unique and filesystem safe
SOURCE_ID_KEY = "clip/source_id"  # bytes, YouTube id or EPIC video id
START_KEY = "clip/start/seconds"  # float, span start, seconds from the source's first timestamp
END_KEY = "clip/end/seconds"  # float, span end, same clock
LABEL_TEXT_KEY = "clip/label/text"  # bytes list, one per index in LABEL_INDEX_KEY
VERB_INDEX_KEY = "clip/label/verb_index"  # int64 (EPIC-KITCHENS)
NOUN_INDEX_KEY = "clip/label/noun_index"  # int64 (EPIC-KITCHENS)
ACTION_INDEX_KEY = "clip/label/action_index"  # int64 (EPIC-KITCHENS)
HAS_AUDIO_KEY = "clip/has_audio"  # int64 0/1; 0 means the melspec is of silence
# int64 0/1; 0: the source had no video stream (an audio-only file) and the
# frames are black squares (blank_frame_size). Records written before the key
# existed lack it: they all had video (read as 1).
HAS_VIDEO_KEY = "clip/has_video"
DECODED_DURATION_KEY = "clip/decoded_duration/seconds"  # float, true media covered
SOURCE_FPS_KEY = "media/source/fps"  # float, the source's native frame rate
SOURCE_WIDTH_KEY = "media/source/width"  # int64
SOURCE_HEIGHT_KEY = "media/source/height"  # int64
FRAME_WIDTH_KEY = "image/width"  # int64, stored frames
FRAME_HEIGHT_KEY = "image/height"  # int64, stored frames
NUM_FRAMES_KEY = "image/num_frames"  # int64
NUM_AUDIO_SAMPLES_KEY = "audio/num_samples"  # int64, samples behind the melspec

# Label index used for EPIC's verb/noun/action when a clip has none (test sets).
NO_LABEL = -1


# ---------------------------------------------------------------------------
# Shapes.
# ---------------------------------------------------------------------------
def num_frames(duration_s: float) -> int:
  """Frames sampled at VIDEO_FPS from a span of this length (t = s + k / fps, t < e; the clock above)."""
  if duration_s <= 0:
    raise ValueError(f"span length must be positive, got {duration_s}")
  # Frame k sits at k / fps; keep every k with k / fps < duration. The small
  # epsilon keeps 10.0 s -> 250 frames despite float representation.
  import math

  return max(1, math.ceil(duration_s * VIDEO_FPS - 1e-6))


def num_audio_samples(duration_s: float) -> int:
  """Audio samples a span holds: round(duration * AUDIO_SAMPLE_RATE)."""
  if duration_s <= 0:
    raise ValueError(f"span length must be positive, got {duration_s}")
  return int(round(duration_s * AUDIO_SAMPLE_RATE))


def num_mel_rows(samples: int) -> int:
  """Log-mel rows for a waveform of `samples` (Kaldi, snip_edges=False)."""
  return (samples + MEL_FRAME_SHIFT_SAMPLES // 2) // MEL_FRAME_SHIFT_SAMPLES


def num_melspec_steps(mel_rows: int) -> int:
  """Record steps for `mel_rows` rows; the last step is zero padded."""
  return -(-mel_rows // MELSPEC_STEP_ROWS)


def resized_frame_size(width: int, height: int, short_side: int = FRAME_SHORT_SIDE) -> tuple[int, int]:
  """(width, height) of a frame resized so its short side is `short_side`.

  Aspect ratio is kept; the long side is rounded to the nearest even number so
  that every codec (and YUV 4:2:0 in particular) can hold the frame.
  """
  if width <= 0 or height <= 0:
    raise ValueError(f"frame size must be positive, got {width}x{height}")
  if short_side <= 0:
    raise ValueError(f"short_side must be positive, got {short_side}")
  if width <= height:
    long_side = 2 * max(1, round(height * short_side / width / 2))
    return short_side, long_side
  long_side = 2 * max(1, round(width * short_side / height / 2))
  return long_side, short_side


def blank_frame_size(short_side: int = FRAME_SHORT_SIDE) -> tuple[int, int]:
  """(width, height) of the black frames a clip without video stores: a square of the short side.

  A source without video has no aspect ratio to keep; a square crops the same
  way whatever the reader takes from it.
  """
  if short_side <= 0:
    raise ValueError(f"short_side must be positive, got {short_side}")
  return short_side, short_side


def contract_parameters() -> dict[str, Any]:
  """The parameters a shard was built with; the trainer refuses a mismatch."""
  return {
      "schema_version": SCHEMA_VERSION,
      "video_fps": VIDEO_FPS,
      "audio_sample_rate": AUDIO_SAMPLE_RATE,
      "audio_channels": AUDIO_CHANNELS,
      "mel_num_bins": MEL_NUM_BINS,
      "mel_frame_length_ms": MEL_FRAME_LENGTH_MS,
      "mel_frame_shift_ms": MEL_FRAME_SHIFT_MS,
      "mel_window": MEL_WINDOW,
      "mel_low_freq_hz": MEL_LOW_FREQ_HZ,
      "mel_high_freq_hz": MEL_HIGH_FREQ_HZ,
      "mel_preemphasis": MEL_PREEMPHASIS,
      "mel_htk_compat": MEL_HTK_COMPAT,
      "mel_snip_edges": MEL_SNIP_EDGES,
      "melspec_step_rows": MELSPEC_STEP_ROWS,
  }


class ContractMismatchError(ValueError):
  """Data was written under a different contract than this code's."""


def check_contract(recorded: Mapping[str, Any], where: str = "data") -> None:
  """Raises ContractMismatchError naming every parameter that differs.

  `recorded` is a build manifest's contract block. The frame short side and
  JPEG quality are build choices, not contract terms, so they may differ.
  """
  expected = contract_parameters()
  diffs = [
      f"{key}: {where} has {recorded.get(key)!r}, this code expects {value!r}"
      for key, value in expected.items()
      if recorded.get(key) != value
  ]
  if diffs:
    raise ContractMismatchError(f"{where} was built under another data contract: " + "; ".join(diffs))


# ---------------------------------------------------------------------------
# Label maps: written into every build as JSON, read by the trainer.
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LabelMap:
  """An ordered set of class names; a class's index is its position.

  Attributes:
    name: what the labels classify, e.g. "vggsound", "audioset", "epic_verb".
    names: display names, index i -> names[i].
    ids: optional stable ids per class (AudioSet MIDs, EPIC keys); same order.
  """

  name: str
  names: tuple[str, ...]
  ids: tuple[str, ...] | None = None

  def __post_init__(self):
    if len(set(self.names)) != len(self.names) and self.ids is None:
      raise ValueError(f"label map {self.name!r} has duplicate names and no ids")
    if self.ids is not None:
      if len(self.ids) != len(self.names):
        raise ValueError(f"label map {self.name!r}: {len(self.ids)} ids for {len(self.names)} names")
      if len(set(self.ids)) != len(self.ids):
        raise ValueError(f"label map {self.name!r} has duplicate ids")

  def __len__(self) -> int:
    return len(self.names)

  def index_of_name(self, name: str) -> int:
    try:
      return self._name_index[name]
    except KeyError:
      raise KeyError(f"{name!r} is not a class of label map {self.name!r}") from None

  def index_of_id(self, class_id: str) -> int:
    if self.ids is None:
      raise KeyError(f"label map {self.name!r} has no ids")
    try:
      return self._id_index[class_id]
    except KeyError:
      raise KeyError(f"{class_id!r} is not a class id of label map {self.name!r}") from None

  # Cached: parsers look labels up once per row, millions of times.
  @functools.cached_property
  def _name_index(self) -> dict[str, int]:
    return {n: i for i, n in enumerate(self.names)}

  @functools.cached_property
  def _id_index(self) -> dict[str, int]:
    return {n: i for i, n in enumerate(self.ids or ())}

  def to_json_dict(self) -> dict[str, Any]:
    classes = [{"index": i, "name": n} for i, n in enumerate(self.names)]
    if self.ids is not None:
      for entry, class_id in zip(classes, self.ids):
        entry["id"] = class_id
    return {"schema_version": SCHEMA_VERSION, "name": self.name, "num_classes": len(self), "classes": classes}

  @classmethod
  def from_json_dict(cls, data: Mapping[str, Any]) -> "LabelMap":
    classes = sorted(data["classes"], key=lambda c: c["index"])
    if [c["index"] for c in classes] != list(range(len(classes))):
      raise ValueError(f"label map {data.get('name')!r}: indices are not 0..{len(classes) - 1}")
    ids = tuple(c["id"] for c in classes) if classes and "id" in classes[0] else None
    return cls(name=data["name"], names=tuple(c["name"] for c in classes), ids=ids)

  def dumps(self) -> str:
    return json.dumps(self.to_json_dict(), indent=1, ensure_ascii=False)

  @classmethod
  def loads(cls, text: str) -> "LabelMap":
    return cls.from_json_dict(json.loads(text))

  @classmethod
  def from_names(cls, name: str, names: Sequence[str], ids: Sequence[str] | None = None) -> "LabelMap":
    return cls(name=name, names=tuple(names), ids=tuple(ids) if ids is not None else None)
