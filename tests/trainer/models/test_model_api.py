"""The public API: config, build_model, call signature, outputs, parameter layout."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from shared import contract
from trainer.models import (
    VIT_SIZES,
    build_model,
    epic_kitchens_model_config,
    get_model_config,
    input_shapes,
    joint_token_groups,
    token_grids,
)
from trainer.models.classifier_head import ClassifierHead


def output_shapes(config, batch_size=2, return_attention=True):
  model = build_model(config)
  inputs = {m: jax.ShapeDtypeStruct(s, np.float32) for m, s in input_shapes(config, batch_size).items()}
  params = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), inputs)
  out = jax.eval_shape(lambda p, x: model.apply(p, x, train=False, return_attention=return_attention), params, inputs)
  return params["params"], out


def test_vit_sizes_are_the_papers():
  assert VIT_SIZES["B"] == dict(hidden_size=768, num_heads=12, mlp_dim=3072, num_layers=12)
  assert VIT_SIZES["S"] == dict(hidden_size=384, num_heads=6, mlp_dim=1536, num_layers=12)
  assert VIT_SIZES["Ti"] == dict(hidden_size=192, num_heads=3, mlp_dim=768, num_layers=12)


def test_default_config_is_the_papers_best_model():
  config = get_model_config()
  assert (config.fusion_type, config.fusion_layer, config.num_bottleneck_tokens) == ("bottleneck", 8, 4)
  assert input_shapes(config, 1) == {
      "rgb": (1, 8, 224, 224, 3),
      "spectrogram": (1, 8 * contract.MEL_FRAMES_PER_SECOND, contract.MEL_NUM_BINS),
  }
  assert token_grids(config) == {"rgb": (8, 14, 14), "spectrogram": (1, 50, 8)}  # 1568 + 400 patches


@pytest.mark.parametrize("fusion_type", ["bottleneck", "self_attention", "cross_attention", "late"])
def test_outputs_and_intermediates(fusion_type, tiny_config):
  config = tiny_config(fusion_type=fusion_type, fusion_layer=1, num_classes=7)
  params, (logits, intermediates) = output_shapes(config)
  assert logits.shape == (2, 7)
  assert {m: v.shape for m, v in intermediates["logits_per_modality"].items()} == {"rgb": (2, 7), "spectrogram": (2, 7)}
  assert {m: v.shape for m, v in intermediates["cls_embeddings"].items()} == {"rgb": (2, 32), "spectrogram": (2, 32)}
  tokens = sum(size for _, size in joint_token_groups(config))
  assert intermediates["attention"].shape == (2, config.num_layers, tokens, tokens)
  assert ("fusion_tokens" in intermediates) == (fusion_type == "bottleneck")
  assert tokens == 1 + 8 + 1 + 16 + (4 if fusion_type == "bottleneck" else 0)
  layer_blocks = {name: set(block) for name, block in params["encoder"].items() if name.startswith("layer_")}
  assert layer_blocks["layer_0"] == {"rgb", "spectrogram"}  # Below L_f: one block per modality.
  assert layer_blocks["layer_1"] == ({"shared"} if fusion_type == "self_attention" else {"rgb", "spectrogram"})
  assert set(params["head"]) == {"classifier"}  # One classifier for both modalities.


def test_attention_only_when_asked(tiny_config):
  _, (_, intermediates) = output_shapes(tiny_config(), return_attention=False)
  assert "attention" not in intermediates


def test_epic_kitchens_variant_has_verb_and_noun_heads(tiny_config):
  config = epic_kitchens_model_config(
      "tiny", num_layers=2, fusion_layer=0, num_frames=4, image_size=32, audio_seconds=0.32
  )
  params, (logits, intermediates) = output_shapes(config)
  assert {k: v.shape for k, v in logits.items()} == {"verb": (2, 97), "noun": (2, 300)}
  for modality in ("rgb", "spectrogram"):
    modality_logits = intermediates["logits_per_modality"][modality]
    assert {k: v.shape for k, v in modality_logits.items()} == {"verb": (2, 97), "noun": (2, 300)}
  assert set(params["head"]) == {"classifier_verb", "classifier_noun"}


@pytest.mark.parametrize("modality", ["rgb", "spectrogram"])
def test_single_modality_baselines(modality, tiny_config):
  config = tiny_config(modalities=(modality,), fusion_type="late")
  params, (logits, intermediates) = output_shapes(config)
  assert logits.shape == (2, 5)
  assert set(intermediates["cls_embeddings"]) == {modality}
  assert set(params["encoder"]["layer_0"]) == {modality}
  assert {name for name in params if name.startswith("tokenizer_")} == {f"tokenizer_{modality}"}
  with pytest.raises(ValueError, match="nothing to fuse"):
    tiny_config(modalities=(modality,), fusion_type="bottleneck")
  assert get_model_config("tiny", modalities=(modality,)).fusion_type == "late"


def test_tubelets_halve_the_rgb_tokens(tiny_config):
  config = tiny_config(num_frames=4, rgb_tubelet_frames=2)
  params, (_, intermediates) = output_shapes(config)
  assert token_grids(config)["rgb"] == (2, 2, 2)
  assert params["tokenizer_rgb"]["projection"]["kernel"].shape == (2, 16, 16, 3, 32)
  assert intermediates["attention"].shape[-1] == 1 + 8 + 1 + 16 + 4


def test_shared_classifier_and_averaged_logits(tiny_config, init_model, random_inputs, run_model):
  config = tiny_config()
  model, variables = init_model(config)
  logits, intermediates = run_model(model, variables, random_inputs(config))
  classifier = variables["params"]["head"]["classifier"]
  for modality, cls in intermediates["cls_embeddings"].items():
    expected = np.asarray(cls) @ np.asarray(classifier["kernel"]) + np.asarray(classifier["bias"])
    np.testing.assert_allclose(intermediates["logits_per_modality"][modality], expected, rtol=1e-5, atol=1e-5)
  per_modality = intermediates["logits_per_modality"]
  mean = (np.asarray(per_modality["rgb"]) + per_modality["spectrogram"]) / 2
  np.testing.assert_allclose(logits, mean, rtol=1e-6, atol=1e-6)


def test_zero_initialised_head_starts_at_zero_logits():
  head = ClassifierHead(num_classes=3, zero_init=True)
  cls = {"rgb": np.ones((2, 8), np.float32), "spectrogram": np.ones((2, 8), np.float32)}
  logits, _ = head.apply(head.init(jax.random.key(0), cls), cls)
  np.testing.assert_array_equal(logits, np.zeros((2, 3)))


def test_wrong_inputs_are_refused(tiny_config):
  config = tiny_config()
  model = build_model(config)
  shapes = input_shapes(config, 1)
  with pytest.raises(ValueError, match="mel bins"):
    narrow = {"rgb": np.zeros(shapes["rgb"]), "spectrogram": np.zeros((1, 32, 64))}
    jax.eval_shape(lambda: model.init(jax.random.key(0), narrow, train=False))
  with pytest.raises(ValueError, match="lack"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), {"rgb": np.zeros(shapes["rgb"])}, train=False))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(fusion_type="early"), "fusion_type"),
        (dict(fusion_layer=3), "fusion_layer"),
        (dict(cross_attention_impl="fast"), "cross_attention_impl"),
        (dict(modalities=("rgb", "depth")), "modalities"),
        (dict(image_size=40), "image_size"),
        (dict(audio_seconds=0.3), "spectrogram"),
        (dict(num_frames=3, rgb_tubelet_frames=2), "tubelet"),
        (dict(stochastic_depth_rate=1.0), "stochastic_depth_rate"),
    ],
)
def test_config_validation(overrides, message, tiny_config):
  with pytest.raises(ValueError, match=message):
    tiny_config(**overrides)
