"""Configs: the paper's hyperparameters, variants, command-line overrides, the learning-rate schedule."""

import importlib
import os

import pytest
from absl import flags
from ml_collections import config_flags

from trainer.configs import common

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = ("audioset_as500k", "audioset_mini", "vggsound", "epic_kitchens", "tiny", "scenic_mbt_b16x2")


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("variant", [None, "audio", "video"])
def test_every_config_and_variant_builds(name, variant):
  module = importlib.import_module(f"trainer.configs.{name}")
  config = module.get_config(variant)
  expected = common.VARIANTS[variant or "av"]
  assert tuple(config.model.modalities) == expected
  assert config.model.fusion_type == ("bottleneck" if len(expected) == 2 else "late")
  assert "python -m trainer.train --config trainer/configs/" in module.__doc__
  assert "python -m trainer.evaluate" in module.__doc__ or name != "tiny"
  assert "Expected" in module.__doc__


@pytest.mark.parametrize("name, classes, expected", [
    ("audioset_as500k", 527, "49.6"), ("audioset_mini", 527, "43.9"), ("vggsound", 309, "64.1"),
    ("epic_kitchens", 0, "43.4")])
def test_paper_hyperparameters(name, classes, expected):
  module = importlib.import_module(f"trainer.configs.{name}")
  config = module.get_config()
  assert expected in module.__doc__
  assert (config.batch_size, config.learning_rate, config.num_epochs, config.warmup_epochs) == (64, 0.5, 50, 2.5)
  assert (config.momentum, config.grad_clip_norm) == (0.9, 1.0)
  assert config.mixup.alpha == 0.3 and config.mixup.per_modality
  assert config.model.stochastic_depth_rate == 0.3
  assert (config.model.hidden_size, config.model.num_layers, config.model.num_heads) == (768, 12, 12)
  assert (config.model.num_bottleneck_tokens, config.model.fusion_layer) == (4, 8)
  assert config.data.num_test_crops == 4 and config.model.image_size == 224
  assert (config.data.spec_augment.time_mask_max_rows, config.data.spec_augment.freq_mask_max_bins) == (192, 48)
  assert config.model.num_classes == classes
  if name == "epic_kitchens":
    assert dict(config.model.class_heads) == {"verb": 97, "noun": 300}
    assert config.model.num_frames == 32 and config.data.frame_stride == 1.0
  else:
    assert config.model.num_frames == 8 and config.model.spectrogram_rows == 800


def test_scenic_zoo_config_is_mbt_b16x2():
  from trainer.configs import scenic_mbt_b16x2
  from trainer.data import input_pipeline
  from trainer.models import token_grids

  config = scenic_mbt_b16x2.get_config()
  model = config.model
  assert (model.hidden_size, model.num_layers, model.classifier, model.share_encoder) == (768, 12, "gap", False)
  assert (model.fusion_type, model.fusion_layer, model.num_bottleneck_tokens) == ("bottleneck", 8, 4)
  assert token_grids(model) == {"rgb": (16, 14, 14), "spectrogram": (1, 50, 8)}  # 2x16x16 tubelets of 32 frames
  window = input_pipeline.window_spec(config)
  assert (window.num_frames, window.frame_stride, window.spectrogram_rows) == (32, 2.0, 800)
  assert (config.data.melspec_mean, config.data.melspec_std) == (1.102, 2.762)
  for expected in ("30.9", "27.0", "43.9", "44.0", "33.9", "52.3", "trainer.import_scenic"):
    assert expected in scenic_mbt_b16x2.__doc__


def test_command_line_overrides():
  argv = ["train", f"--config={REPO}/trainer/configs/vggsound.py:audio", "--config.model.fusion_layer=4",
          "--config.data.window_seconds=4.0", "--config.mixup.per_modality=False",
          "--config.data.train_dir=gs://bucket/vggsound/train"]
  values = flags.FlagValues()
  # Override flags are declared from the argv the program runs with.
  config_flags.DEFINE_config_file("config", None, "config", flag_values=values, lock_config=True, sys_argv=argv)
  values(argv)
  config = values.config
  assert tuple(config.model.modalities) == ("spectrogram",)
  assert config.model.fusion_layer == 4 and not config.mixup.per_modality
  assert config.model.spectrogram_rows == 400  # follows the window
  assert config.data.train_dir == "gs://bucket/vggsound/train"


def test_unknown_variant_is_refused():
  with pytest.raises(ValueError, match="variant"):
    common.parse_variant("stereo")


def test_learning_rate_schedule_warms_up_then_decays_to_zero():
  from trainer import train
  from trainer.configs import tiny

  config = tiny.get_config()
  with config.unlocked():
    config.total_steps = None
    config.warmup_steps = None
    config.num_epochs = 4
    config.warmup_epochs = 1
    config.batch_size = 10
  total, warmup = train.schedule_lengths(config, num_records=105)  # 10 steps per epoch
  assert (total, warmup) == (40, 10)
  _, schedule = train.make_optimizer(config, total, warmup)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(config.learning_rate / 2)
  assert float(schedule(10)) == pytest.approx(config.learning_rate)
  assert float(schedule(25)) == pytest.approx(config.learning_rate / 2, rel=1e-5)  # half-way down the cosine
  assert float(schedule(40)) == pytest.approx(0.0, abs=1e-7)
