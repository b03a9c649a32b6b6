"""One serialized clip record -> one model-ready example (host side, numpy + Pillow).

Both input pipelines (grain over ArrayRecord, tf.data over TFRecord) call the
same :class:`ClipPreprocessor`, so for the same (seed, epoch, record index) they
yield identical examples.

An example is a dict:

  inputs:
    rgb: uint8 [T, S, S, 3] (train) or [K, T, S, S, 3] (test, K crops).
      Frames are decoded, resized so the short side is `min_resize` (skipped
      when the stored frames already have it), cropped to S x S (random at
      train, centre at test) and flipped at random at train. They stay uint8
      on the host: `trainer.data.device_ops.finish_rgb` applies colour jitter
      and scales to [-1, 1] on the accelerator (4x less host memory and
      host-to-device traffic than float32).
    spectrogram: float32 [R, 128] (train) or [K, R, 128] (test): the window's
      log-mel rows, zero log-mel past the clip's end, normalised with the
      build's mean and std, then (train) SpecAugment masks set to 0.
  rgb_jitter: float32 [4] (train, with RGB): brightness delta, contrast
    factor, saturation factor, grayscale flag; (0, 1, 1, 0) is no jitter.
  label: float32 [C] multi-hot (AudioSet) or one-hot (VGGSound), or
    {'verb': [97], 'noun': [300]} one-hots (EPIC-KITCHENS; all zero when the
    clip has no label, as in test sets).
  mask: float32 scalar, 1 for a real example, 0 for padding at the end of a
    test pass.
  index: int64 scalar, the record's index in its split.

Randomness: a training example draws everything from
`np.random.default_rng([seed, epoch, index])`, in this order: window start,
crop offset, flip, colour jitter, SpecAugment masks. A resumed run therefore
sees the same augmentations, and nothing depends on worker count or host count.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from shared import contract
from shared.records import RecordError
from trainer.data import sampling
from trainer.data.clip_reader import ParsedClip, parse_clip

RGB = "rgb"
SPECTROGRAM = "spectrogram"

# How each dataset's labels become targets.
MULTI_HOT = "multi_hot"  # AudioSet: sigmoid BCE, mAP
ONE_HOT = "one_hot"  # VGGSound: softmax CE, top-1 / top-5
VERB_NOUN = "verb_noun"  # EPIC-KITCHENS: two softmax heads, action = both right
LABEL_KINDS = {"audioset": MULTI_HOT, "vggsound": ONE_HOT, "epic_kitchens": VERB_NOUN}

NO_JITTER = np.array([0.0, 1.0, 1.0, 0.0], np.float32)


@dataclasses.dataclass(frozen=True)
class ColorJitter:
  """Clip-level colour jitter (same parameters for every frame of a clip).

  Attributes:
    probability: chance that a clip is jittered at all (DMVR/Scenic: 0.8).
    brightness: max absolute brightness delta, on the [0, 1] scale.
    contrast: contrast factor drawn from [1 - contrast, 1 + contrast].
    saturation: saturation factor drawn from [1 - saturation, 1 + saturation].
    grayscale_probability: chance that a clip is turned gray (colour drop).
  """

  probability: float = 0.8
  brightness: float = 32.0 / 255.0
  contrast: float = 0.4
  saturation: float = 0.4
  grayscale_probability: float = 0.1


@dataclasses.dataclass(frozen=True)
class SpecAugment:
  """SpecAugment masks on the normalised log-mel (masked values become 0).

  Attributes:
    time_mask_max_rows: longest time mask, in rows (paper, from AST: 192).
    time_mask_count: time masks per example.
    freq_mask_max_bins: widest frequency mask, in mel bins (paper: 48).
    freq_mask_count: frequency masks per example.
  """

  time_mask_max_rows: int = 192
  time_mask_count: int = 1
  freq_mask_max_bins: int = 48
  freq_mask_count: int = 1


@dataclasses.dataclass(frozen=True)
class ClipPreprocessor:
  """Turns serialized SequenceExample bytes into examples; picklable for workers.

  Attributes:
    window: frames and log-mel rows per window (see trainer.data.sampling).
    modalities: which of 'rgb' and 'spectrogram' to produce; the other is not
      decoded at all (unimodal baselines pay only for their modality).
    label_kind: MULTI_HOT, ONE_HOT or VERB_NOUN.
    num_classes: classes of a MULTI_HOT or ONE_HOT label.
    class_heads: ((head, classes), ...) of a VERB_NOUN label.
    melspec_mean: log-mel mean of the build (or a config override).
    melspec_std: log-mel standard deviation of the build.
    crop_size: side of the square RGB crop.
    min_resize: short side frames are resized to before cropping.
    num_test_crops: windows per clip at test time.
    flip: random horizontal flips at train time.
    color_jitter: colour jitter parameters, or None for none.
    spec_augment: SpecAugment parameters, or None for none.
    seed: the run's data seed.
  """

  window: sampling.WindowSpec
  modalities: tuple[str, ...]
  label_kind: str
  num_classes: int = 0
  class_heads: tuple[tuple[str, int], ...] = ()
  melspec_mean: float = 0.0
  melspec_std: float = 1.0
  crop_size: int = 224
  min_resize: int = 256
  num_test_crops: int = 4
  flip: bool = True
  color_jitter: Optional[ColorJitter] = ColorJitter()
  spec_augment: Optional[SpecAugment] = SpecAugment()
  seed: int = 0

  def __post_init__(self):
    unknown = set(self.modalities) - {RGB, SPECTROGRAM}
    if not self.modalities or unknown:
      raise ValueError(f"modalities must be a non-empty subset of ('rgb', 'spectrogram'), got {self.modalities}")
    if self.label_kind not in (MULTI_HOT, ONE_HOT, VERB_NOUN):
      raise ValueError(f"unknown label kind {self.label_kind!r}")
    if self.label_kind == VERB_NOUN and dict(self.class_heads).keys() != {"verb", "noun"}:
      raise ValueError(f"EPIC-KITCHENS labels need class_heads verb and noun, got {self.class_heads}")
    if self.label_kind != VERB_NOUN and self.num_classes < 1:
      raise ValueError(f"num_classes must be positive for {self.label_kind} labels")
    if RGB in self.modalities and (not self.window.num_frames or self.crop_size > self.min_resize):
      raise ValueError(f"RGB needs frames and crop_size <= min_resize, got {self.window}, "
                       f"crop {self.crop_size}, resize {self.min_resize}")
    if SPECTROGRAM in self.modalities and not self.window.spectrogram_rows:
      raise ValueError("the spectrogram modality needs spectrogram rows in the window")

  # -------------------------------------------------------------------------
  # Entry points.
  # -------------------------------------------------------------------------
  def train_example(self, serialized: bytes, epoch: int, index: int) -> dict[str, Any]:
    """A randomly sampled and augmented training example."""
    clip = parse_clip(serialized)
    rng = np.random.default_rng([self.seed, epoch, index])
    start = sampling.train_start(self.window, clip.num_frames, rng)
    example: dict[str, Any] = {"inputs": {}}
    if RGB in self.modalities:
      top, left, flip = self._random_crop(clip, rng)
      example["inputs"][RGB] = self._frames(clip, [start], top, left, flip)[0]
      example["rgb_jitter"] = self._jitter_parameters(rng)
    if SPECTROGRAM in self.modalities:
      spectrogram = self._spectrogram(clip, [start])[0]
      if self.spec_augment is not None:
        _spec_augment(spectrogram, self.spec_augment, rng)
      example["inputs"][SPECTROGRAM] = spectrogram
    example["label"] = self._label(clip)
    example["mask"] = np.float32(1.0)
    example["index"] = np.int64(index)
    return example

  def test_example(self, serialized: bytes, index: int, mask: float = 1.0) -> dict[str, Any]:
    """`num_test_crops` uniformly spread windows, centre crops, no augmentation."""
    clip = parse_clip(serialized)
    starts = sampling.test_starts(self.window, clip.num_frames, self.num_test_crops)
    example: dict[str, Any] = {"inputs": {}}
    if RGB in self.modalities:
      height, width = self._resized_size(clip)
      top, left = (height - self.crop_size) // 2, (width - self.crop_size) // 2
      example["inputs"][RGB] = self._frames(clip, starts, top, left, flip=False)
    if SPECTROGRAM in self.modalities:
      example["inputs"][SPECTROGRAM] = self._spectrogram(clip, starts)
    example["label"] = self._label(clip)
    example["mask"] = np.float32(mask)
    example["index"] = np.int64(index)
    return example

  def element_spec(self, train: bool) -> dict[str, Any]:
    """Nested dict of (shape, dtype) of an example, as yielded (unbatched)."""
    crops = () if train else (self.num_test_crops,)
    inputs = {}
    if RGB in self.modalities:
      inputs[RGB] = (crops + (self.window.num_frames, self.crop_size, self.crop_size, 3), np.uint8)
    if SPECTROGRAM in self.modalities:
      inputs[SPECTROGRAM] = (crops + (self.window.spectrogram_rows, contract.MEL_NUM_BINS), np.float32)
    spec: dict[str, Any] = {"inputs": inputs}
    if train and RGB in self.modalities:
      spec["rgb_jitter"] = ((4,), np.float32)
    if self.label_kind == VERB_NOUN:
      spec["label"] = {head: ((size,), np.float32) for head, size in self.class_heads}
    else:
      spec["label"] = ((self.num_classes,), np.float32)
    spec["mask"] = ((), np.float32)
    spec["index"] = ((), np.int64)
    return spec

  # -------------------------------------------------------------------------
  # Video.
  # -------------------------------------------------------------------------
  def _resized_size(self, clip: ParsedClip) -> tuple[int, int]:
    """(height, width) of the frames after the short-side resize."""
    width, height = clip.frame_width, clip.frame_height
    if min(width, height) == self.min_resize:
      return height, width
    scale = self.min_resize / min(width, height)
    return max(self.min_resize, round(height * scale)), max(self.min_resize, round(width * scale))

  def _random_crop(self, clip: ParsedClip, rng: np.random.Generator) -> tuple[int, int, bool]:
    height, width = self._resized_size(clip)
    top = int(rng.integers(0, height - self.crop_size + 1))
    left = int(rng.integers(0, width - self.crop_size + 1))
    coin = rng.random()  # drawn even without flips, so later draws do not shift
    flip = bool(self.flip and coin < 0.5)
    return top, left, flip

  def _frames(self, clip: ParsedClip, starts: Sequence[int], top: int, left: int, flip: bool) -> np.ndarray:
    """uint8 [len(starts), T, S, S, 3]; each stored frame is decoded once."""
    size = self.crop_size
    height, width = self._resized_size(clip)
    box = (left, top, left + size, top + size)
    out = np.empty((len(starts), self.window.num_frames, size, size, 3), np.uint8)
    decoded: dict[int, np.ndarray] = {}
    for crop, start in enumerate(starts):
      for k, frame in enumerate(sampling.frame_indices(self.window, start, clip.num_frames)):
        frame = int(frame)
        if frame not in decoded:
          decoded[frame] = _decode_crop(clip.jpeg(frame), (width, height), box, flip, clip.clip_id, frame)
        out[crop, k] = decoded[frame]
    return out

  def _jitter_parameters(self, rng: np.random.Generator) -> np.ndarray:
    jitter = self.color_jitter
    # Always draw the same count of numbers, so later draws do not shift.
    u = rng.random(5)
    if jitter is None or u[0] >= jitter.probability:
      return NO_JITTER.copy()
    return np.array([
        (2 * u[1] - 1) * jitter.brightness,
        1 + (2 * u[2] - 1) * jitter.contrast,
        1 + (2 * u[3] - 1) * jitter.saturation,
        float(u[4] < jitter.grayscale_probability),
    ], np.float32)

  # -------------------------------------------------------------------------
  # Audio.
  # -------------------------------------------------------------------------
  def _spectrogram(self, clip: ParsedClip, starts: Sequence[int]) -> np.ndarray:
    """float32 [len(starts), R, 128], normalised; zero log-mel past the end."""
    rows = self.window.spectrogram_rows
    out = np.zeros((len(starts), rows, contract.MEL_NUM_BINS), np.float32)
    for crop, start in enumerate(starts):
      clip.melspec_rows(sampling.first_row(start), out[crop])
    out -= np.float32(self.melspec_mean)
    out *= np.float32(1.0 / self.melspec_std)
    return out

  # -------------------------------------------------------------------------
  # Labels.
  # -------------------------------------------------------------------------
  def _label(self, clip: ParsedClip):
    if self.label_kind == VERB_NOUN:
      heads = dict(self.class_heads)
      return {"verb": _one_hot(clip.verb_index, heads["verb"], clip.clip_id, "verb"),
              "noun": _one_hot(clip.noun_index, heads["noun"], clip.clip_id, "noun")}
    indices = clip.label_indices
    if self.label_kind == ONE_HOT and len(indices) != 1:
      raise RecordError(f"record {clip.clip_id}: a single-label dataset needs exactly one label, got {indices}")
    target = np.zeros(self.num_classes, np.float32)
    for label in indices:
      if not 0 <= label < self.num_classes:
        raise RecordError(f"record {clip.clip_id}: label {label} outside 0..{self.num_classes - 1}")
      target[label] = 1.0
    return target


def _one_hot(index: int, size: int, clip_id: str, what: str) -> np.ndarray:
  target = np.zeros(size, np.float32)
  if index == contract.NO_LABEL:
    return target
  if not 0 <= index < size:
    raise RecordError(f"record {clip_id}: {what} {index} outside 0..{size - 1}")
  target[index] = 1.0
  return target


def _decode_crop(jpeg: bytes, size: tuple[int, int], box: tuple[int, int, int, int], flip: bool, clip_id: str,
                 frame: int) -> np.ndarray:
  """Decodes one JPEG, resizes it to `size` (width, height) if needed, crops `box`, flips if asked."""
  try:
    image = Image.open(io.BytesIO(jpeg))
    if image.size != size:
      image.draft("RGB", size)  # DCT-domain downscale first when frames are >= 2x larger
      image = image.resize(size, Image.BILINEAR)
    if image.mode != "RGB":
      image = image.convert("RGB")
    image = image.crop(box)
    if flip:  # in Pillow: a negative-stride numpy copy costs ~10x more
      image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(image)
  except (OSError, ValueError) as error:
    raise RecordError(f"record {clip_id}: frame {frame} is not a decodable JPEG: {error}") from error


def _spec_augment(spectrogram: np.ndarray, params: SpecAugment, rng: np.random.Generator) -> None:
  """Zeroes random time and frequency bands of a [rows, bins] array in place."""
  rows, bins = spectrogram.shape
  for _ in range(params.time_mask_count):
    width = int(rng.integers(0, min(params.time_mask_max_rows, rows) + 1))
    start = int(rng.integers(0, rows - width + 1))
    spectrogram[start:start + width] = 0.0
  for _ in range(params.freq_mask_count):
    width = int(rng.integers(0, min(params.freq_mask_max_bins, bins) + 1))
    start = int(rng.integers(0, bins - width + 1))
    spectrogram[:, start:start + width] = 0.0
