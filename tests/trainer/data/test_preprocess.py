"""Example preprocessing: window sampling, frame/log-mel alignment, padding, augmentation, labels."""

import numpy as np
import pytest

from shared import contract, records
from shared.media import generator
from trainer.data import clip_reader, preprocess, sampling, synthetic

MEAN, STD = 2.0, 4.0


def _record(seconds=4.0, label=1, size=(48, 48), dataset="vggsound", verb_noun=None, **overrides):
  record = synthetic.synthetic_record(
      7, dataset=dataset, seconds=seconds, label=label, num_classes=4, frame_size=size,
      rng=np.random.default_rng(0), verb_noun=verb_noun)
  if overrides:
    record = records.ClipRecord(**{**record.__dict__, **overrides})
  return records.encode(record)


def _preprocessor(**overrides):
  fields = dict(window=sampling.WindowSpec.paper(2.0, 4), modalities=("rgb", "spectrogram"),
                label_kind=preprocess.ONE_HOT, num_classes=4, melspec_mean=MEAN, melspec_std=STD,
                crop_size=48, min_resize=48, num_test_crops=4, flip=False, spec_augment=None, seed=3)
  fields.update(overrides)
  return preprocess.ClipPreprocessor(**fields)


def _times(example_rgb, example_spectrogram):
  """(frame codes, raw log-mel bin 0 = absolute row) of one window."""
  codes = [generator.read_frame_code(frame) for frame in example_rgb]
  rows = example_spectrogram[:, 0] * STD + MEAN
  return codes, rows


# ---------------------------------------------------------------------------
# Window arithmetic.
# ---------------------------------------------------------------------------
def test_paper_window_is_eight_frames_over_eight_seconds_with_stride_25():
  spec = sampling.WindowSpec.paper(8.0, 8)
  assert spec.frame_stride == 25 and spec.spectrogram_rows == 800 and spec.span_frames == 200
  assert spec.frame_offsets.tolist() == [0, 25, 50, 75, 100, 125, 150, 175]
  # A 10 s clip (250 frames): starts 0..50; four test crops spread uniformly.
  assert sampling.max_start(spec, 250) == 50
  assert sampling.test_starts(spec, 250, 4) == [0, 17, 33, 50]
  assert sampling.test_starts(spec, 250, 1) == [25]
  assert sampling.first_row(50) == 200


def test_fractional_stride_and_epic_window():
  spec = sampling.WindowSpec.paper(2.0, 4)  # 12.5 frames apart
  assert spec.frame_offsets.tolist() == [0, 12, 25, 37]
  epic = sampling.WindowSpec.paper(2.56, 32, frame_stride=1.0)
  assert epic.frame_offsets.tolist() == list(range(32)) and epic.spectrogram_rows == 256
  assert epic.span_frames == 64  # the audio span is the longer one


def test_short_clip_window_starts_at_zero_and_repeats_the_last_frame():
  spec = sampling.WindowSpec.paper(8.0, 8)
  assert sampling.max_start(spec, 60) == 0
  assert sampling.frame_indices(spec, 0, 60).tolist() == [0, 25, 50, 59, 59, 59, 59, 59]


# ---------------------------------------------------------------------------
# Alignment: frame k of the window shows the same time as its log-mel rows.
# ---------------------------------------------------------------------------
def test_train_window_frames_and_log_mel_rows_are_aligned():
  serialized = _record(seconds=4.0)
  prep = _preprocessor()
  starts = set()
  for index in range(12):
    example = prep.train_example(serialized, epoch=0, index=index)
    codes, rows = _times(example["inputs"]["rgb"], example["inputs"]["spectrogram"])
    start = codes[0]
    starts.add(start)
    assert codes == [start + offset for offset in (0, 12, 25, 37)]
    # Row r of the window is absolute row 4 * start + r, and frame k's time
    # (code / 25 s) is row 4 * code.
    np.testing.assert_allclose(rows, 4 * start + np.arange(200), atol=1e-3)
    for code in codes:
      assert rows[4 * code - 4 * start] == pytest.approx(4 * code, abs=1e-3)
    assert 0 <= start <= 100 - 50
  assert len(starts) > 3  # the start is random


def test_test_crops_are_uniform_and_each_aligned():
  example = _preprocessor().test_example(_record(seconds=4.0), index=0)
  assert example["inputs"]["rgb"].shape == (4, 4, 48, 48, 3)
  assert example["inputs"]["spectrogram"].shape == (4, 200, 128)
  starts = []
  for crop in range(4):
    codes, rows = _times(example["inputs"]["rgb"][crop], example["inputs"]["spectrogram"][crop])
    starts.append(codes[0])
    np.testing.assert_allclose(rows, 4 * codes[0] + np.arange(200), atol=1e-3)
  assert starts == [0, 17, 33, 50]


def test_short_clip_is_padded_with_its_last_frame_and_zero_log_mel():
  example = _preprocessor().test_example(_record(seconds=1.0), index=0)  # 25 frames, 100 rows
  for crop in range(4):
    codes, _ = _times(example["inputs"]["rgb"][crop], example["inputs"]["spectrogram"][crop])
    assert codes == [0, 12, 24, 24]
    raw = example["inputs"]["spectrogram"][crop] * STD + MEAN
    np.testing.assert_allclose(raw[:100, 0], np.arange(100), atol=1e-3)
    np.testing.assert_allclose(raw[100:], 0.0, atol=1e-5)  # zero log-mel past the end


# ---------------------------------------------------------------------------
# Determinism and augmentation.
# ---------------------------------------------------------------------------
def _same(a, b):
  import jax

  return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(x, y), a, b)))


def test_randomness_is_a_function_of_seed_epoch_and_index():
  serialized = _record(seconds=4.0, size=(64, 48))
  prep = _preprocessor(min_resize=48, crop_size=32, flip=True, spec_augment=preprocess.SpecAugment(),
                       color_jitter=preprocess.ColorJitter(probability=1.0))
  a = prep.train_example(serialized, epoch=1, index=5)
  assert _same(a, prep.train_example(serialized, epoch=1, index=5))
  assert not _same(a, prep.train_example(serialized, epoch=2, index=5))
  assert not _same(a, prep.train_example(serialized, epoch=1, index=6))
  other_seed = _preprocessor(min_resize=48, crop_size=32, flip=True, spec_augment=preprocess.SpecAugment(),
                             color_jitter=preprocess.ColorJitter(probability=1.0), seed=4)
  assert not _same(a, other_seed.train_example(serialized, epoch=1, index=5))
  assert a["inputs"]["rgb"].dtype == np.uint8 and a["inputs"]["rgb"].shape == (4, 32, 32, 3)


def test_flips_mirror_the_same_crop():
  serialized = _record(seconds=4.0, size=(64, 48))
  plain, flipping = _preprocessor(min_resize=48, crop_size=32), _preprocessor(min_resize=48, crop_size=32, flip=True)
  flipped = 0
  for index in range(16):
    a = plain.train_example(serialized, 0, index)["inputs"]["rgb"]
    b = flipping.train_example(serialized, 0, index)["inputs"]["rgb"]
    if np.array_equal(a, b[:, :, ::-1]) and not np.array_equal(a, b):
      flipped += 1
    else:
      np.testing.assert_array_equal(a, b)
  assert 3 <= flipped <= 13


def test_resize_to_the_short_side_before_a_centre_crop():
  import io

  from PIL import Image

  serialized = _record(seconds=1.0, size=(96, 64))
  example = _preprocessor(min_resize=32, crop_size=32).test_example(serialized, 0)
  assert example["inputs"]["rgb"].shape == (4, 4, 32, 32, 3)
  first_jpeg = records.decode(serialized).jpeg_frames[0]
  reference = np.asarray(Image.open(io.BytesIO(first_jpeg)).convert("RGB").resize((48, 32), Image.BILINEAR))
  difference = np.abs(example["inputs"]["rgb"][0, 0].astype(int) - reference[:, 8:40].astype(int))
  assert difference.mean() < 6


def test_spec_augment_masks_bands_within_their_limits():
  rng = np.random.default_rng(0)
  params = preprocess.SpecAugment(time_mask_max_rows=30, time_mask_count=2, freq_mask_max_bins=10, freq_mask_count=1)
  for _ in range(20):
    spectrogram = np.ones((200, 128), np.float32)
    preprocess._spec_augment(spectrogram, params, rng)
    masked_rows = np.flatnonzero((spectrogram == 0).all(axis=1))
    masked_bins = np.flatnonzero((spectrogram == 0).all(axis=0))
    assert len(masked_rows) <= 60 and len(masked_bins) <= 10
    if len(masked_bins):
      assert masked_bins.max() - masked_bins.min() + 1 == len(masked_bins)  # one contiguous band


def test_colour_jitter_parameters():
  rng = np.random.default_rng(0)
  never = _preprocessor(color_jitter=preprocess.ColorJitter(probability=0.0))
  np.testing.assert_array_equal(never._jitter_parameters(rng), preprocess.NO_JITTER)
  jitter = preprocess.ColorJitter(probability=1.0, brightness=0.1, contrast=0.2, saturation=0.3,
                                  grayscale_probability=0.5)
  always = _preprocessor(color_jitter=jitter)
  drawn = np.stack([always._jitter_parameters(rng) for _ in range(200)])
  assert np.abs(drawn[:, 0]).max() <= 0.1 and np.abs(drawn[:, 1] - 1).max() <= 0.2
  assert np.abs(drawn[:, 2] - 1).max() <= 0.3 and 0.3 < drawn[:, 3].mean() < 0.7


def test_unimodal_preprocessors_skip_the_other_modality():
  serialized = _record()
  audio = _preprocessor(modalities=("spectrogram",)).train_example(serialized, 0, 0)
  video = _preprocessor(modalities=("rgb",)).train_example(serialized, 0, 0)
  assert set(audio["inputs"]) == {"spectrogram"} and "rgb_jitter" not in audio
  assert set(video["inputs"]) == {"rgb"} and "rgb_jitter" in video


# ---------------------------------------------------------------------------
# Labels.
# ---------------------------------------------------------------------------
def test_labels_per_dataset():
  one_hot = _preprocessor().train_example(_record(label=2), 0, 0)["label"]
  np.testing.assert_array_equal(one_hot, [0, 0, 1, 0])
  multi = _preprocessor(label_kind=preprocess.MULTI_HOT).train_example(_record(label=3, dataset="audioset"), 0, 0)
  np.testing.assert_array_equal(multi["label"], [1, 0, 0, 1])  # classes 3 and (3 + 1) % 4
  epic = _preprocessor(label_kind=preprocess.VERB_NOUN, num_classes=0, class_heads=(("noun", 5), ("verb", 3)))
  labels = epic.train_example(_record(dataset="epic_kitchens", verb_noun=(2, 4)), 0, 0)["label"]
  np.testing.assert_array_equal(labels["verb"], [0, 0, 1])
  np.testing.assert_array_equal(labels["noun"], [0, 0, 0, 0, 1])
  unlabelled = epic.test_example(_record(dataset="epic_kitchens"), 0)["label"]
  assert not unlabelled["verb"].any() and not unlabelled["noun"].any()
  spec = epic.element_spec(train=True)
  assert spec["label"] == {"noun": ((5,), np.float32), "verb": ((3,), np.float32)}


def test_labels_outside_the_label_map_are_refused():
  with pytest.raises(records.RecordError, match="label 9 outside"):
    _preprocessor().train_example(_record(label_indices=[9], label_names=["x"]), 0, 0)


# ---------------------------------------------------------------------------
# Bad records.
# ---------------------------------------------------------------------------
def test_records_of_another_schema_or_garbage_are_refused():
  newer = _record(schema_version=contract.SCHEMA_VERSION + 1)
  with pytest.raises(records.RecordError, match="schema version"):
    _preprocessor().train_example(newer, 0, 0)
  with pytest.raises(records.RecordError, match="not a SequenceExample"):
    _preprocessor().train_example(b"\x00\xff" * 50, 0, 0)
  with pytest.raises(records.RecordError, match="not a SequenceExample|no clip id"):
    _preprocessor().train_example(_record()[: len(_record()) // 2], 0, 0)


def test_fast_log_mel_path_matches_the_record_decoder():
  serialized = _record(seconds=2.3)
  decoded = records.decode(serialized).melspec
  clip = clip_reader.parse_clip(serialized)
  out = np.full((300, 128), -1.0, np.float32)
  clip.melspec_rows(0, out)
  np.testing.assert_array_equal(out[:230], decoded)
  assert (out[230:] == -1).all()  # rows past the clip are left for the caller to fill
