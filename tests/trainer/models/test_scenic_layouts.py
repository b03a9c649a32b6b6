"""Scenic's layouts as options: the shared-block self-attention encoder and the 'gap' classifier."""

from __future__ import annotations

import flax
import jax
import numpy as np
import pytest

from trainer.models import build_model, input_shapes, joint_token_groups


def param_shapes(config):
  model = build_model(config)
  inputs = {m: jax.ShapeDtypeStruct(s, np.float32) for m, s in input_shapes(config, 1).items()}
  return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), inputs)["params"]


def test_shared_encoder_has_one_block_in_every_layer(tiny_config):
  paper = param_shapes(tiny_config(fusion_type="self_attention", fusion_layer=1))
  scenic = param_shapes(tiny_config(fusion_type="self_attention", fusion_layer=1, share_encoder=True))
  assert set(paper["encoder"]["layer_0"]) == {"rgb", "spectrogram"}  # the paper: a block per modality below L_f
  for layer in ("layer_0", "layer_1"):
    assert set(scenic["encoder"][layer]) == {"shared"}


def test_shared_block_below_fusion_equals_tied_per_modality_blocks(
    tiny_config, init_model, random_inputs, run_model, trees_close
):
  """Below L_f each modality still runs alone, through the one shared block."""
  shared_config = tiny_config(fusion_type="self_attention", fusion_layer=1, share_encoder=True)
  shared_model, shared_variables = init_model(shared_config)
  paper_model = build_model(tiny_config(fusion_type="self_attention", fusion_layer=1))
  tied = flax.core.unfreeze(shared_variables)
  block = tied["params"]["encoder"]["layer_0"].pop("shared")
  tied["params"]["encoder"]["layer_0"] = {"rgb": block, "spectrogram": block}
  inputs = random_inputs(shared_config)
  trees_close(run_model(shared_model, shared_variables, inputs), run_model(paper_model, tied, inputs))
  # Untied blocks below L_f give another function, so the comparison has power.
  untied = flax.core.unfreeze(tied)
  untied["params"]["encoder"]["layer_0"]["spectrogram"] = jax.tree.map(lambda x: x * 1.5, block)
  assert not np.allclose(run_model(paper_model, untied, inputs)[0], run_model(shared_model, shared_variables, inputs)[0],
                         atol=1e-4)


def test_shared_encoder_late_fusion_keeps_modalities_apart(tiny_config, init_model, random_inputs, run_model):
  config = tiny_config(fusion_type="late", share_encoder=True)
  model, variables = init_model(config)
  inputs = random_inputs(config)
  other = {**inputs, "spectrogram": inputs["spectrogram"][::-1]}
  before = run_model(model, variables, inputs)[1]["cls_embeddings"]["rgb"]
  after = run_model(model, variables, other)[1]["cls_embeddings"]["rgb"]
  np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


@pytest.mark.parametrize("fusion_type", ["bottleneck", "cross_attention"])
def test_shared_encoder_is_refused_where_scenic_has_no_such_model(fusion_type, tiny_config):
  with pytest.raises(ValueError, match="share_encoder"):
    tiny_config(fusion_type=fusion_type, share_encoder=True)


def test_gap_classifier_has_no_cls_and_pools_all_modality_tokens(tiny_config, init_model, random_inputs, run_model):
  config = tiny_config(classifier="gap", fusion_layer=0)
  params = param_shapes(config)
  assert not [name for name in params if name.startswith("cls_")]
  assert params["posembed_rgb"]["pos_embedding"].shape == (1, 8, 32)  # patches only
  assert params["posembed_spectrogram"]["pos_embedding"].shape == (1, 16, 32)
  assert joint_token_groups(config) == [("rgb", 8), ("spectrogram", 16), ("fusion_tokens", 4)]
  model, variables = init_model(config)
  logits, intermediates = run_model(model, variables, random_inputs(config))
  pooled = np.asarray(intermediates["pooled_embedding"])
  classifier = variables["params"]["head"]["classifier"]
  expected = pooled @ np.asarray(classifier["kernel"]) + np.asarray(classifier["bias"])
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5, atol=1e-5)
  for modality_logits in intermediates["logits_per_modality"].values():  # one joint prediction
    np.testing.assert_array_equal(np.asarray(modality_logits), np.asarray(logits))
  assert "cls_embeddings" not in intermediates


def test_unknown_classifier_is_refused(tiny_config):
  with pytest.raises(ValueError, match="classifier"):
    tiny_config(classifier="max")
