"""The data contract: derived shapes, the contract check and the label-map format."""

import pytest

from shared import contract


def test_shapes_of_a_ten_second_clip():
  assert contract.num_frames(10.0) == 250
  assert contract.num_audio_samples(10.0) == 160_000
  assert contract.num_mel_rows(160_000) == 1000
  assert contract.num_melspec_steps(1000) == 10
  assert contract.MELSPEC_STEP_FLOATS == 12_800


@pytest.mark.parametrize("duration, frames", [(8.0, 200), (0.04, 1), (0.041, 2), (2.5, 63), (1 / 3, 9)])
def test_num_frames_counts_sample_times_before_the_end(duration, frames):
  assert contract.num_frames(duration) == frames


def test_mel_rows_follow_kaldi_without_snip_edges():
  # (samples + 80) // 160, as the reference cases record.
  assert contract.num_mel_rows(44_988) == 281
  assert contract.num_mel_rows(40_000) == 250


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_empty_spans_are_refused(bad):
  with pytest.raises(ValueError):
    contract.num_frames(bad)
  with pytest.raises(ValueError):
    contract.num_audio_samples(bad)


@pytest.mark.parametrize("size, resized", [((640, 360), (456, 256)), ((360, 640), (256, 456)),
                                           ((1920, 1080), (456, 256)), ((256, 256), (256, 256)),
                                           ((160, 120), (342, 256))])
def test_frames_are_resized_to_the_short_side(size, resized):
  assert contract.resized_frame_size(*size) == resized


def test_contract_check_names_what_differs():
  recorded = contract.contract_parameters()
  contract.check_contract(recorded)
  recorded["mel_num_bins"] = 64
  with pytest.raises(contract.ContractMismatchError, match="mel_num_bins"):
    contract.check_contract(recorded, where="shard set X")


def test_label_map_round_trips_through_json():
  labels = contract.LabelMap.from_names("audioset", ["Speech", "Music"], ids=["/m/09x0r", "/m/04rlf"])
  again = contract.LabelMap.loads(labels.dumps())
  assert again == labels
  assert again.index_of_id("/m/04rlf") == 1
  assert again.index_of_name("Speech") == 0
  with pytest.raises(KeyError, match="Guitar"):
    again.index_of_name("Guitar")


def test_label_map_refuses_duplicates():
  with pytest.raises(ValueError):
    contract.LabelMap.from_names("x", ["a", "b"], ids=["1", "1"])
