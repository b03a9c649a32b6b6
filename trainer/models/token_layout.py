"""The joint token layout and the joint attention matrix of one layer.

Attention rollout needs, for every layer, one matrix saying how much each
token's new state draws on each token's old state, over ALL tokens of the
model: the modalities in canonical order, then the fusion tokens (if any).
Each layer module reports its attention as `AttentionRows`: for each token
group it updated (a modality or the fusion tokens), the head-averaged weights
split by the group of the keys. `assemble_joint_attention` turns that into
the [B, N, N] matrix; a group a layer leaves untouched maps to itself.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax.numpy as jnp

# Key of the bottleneck fusion tokens in the token dict the encoder threads
# through its layers.
FUSION_TOKENS = "fusion_tokens"

# query group -> key group -> [B, queries, keys] head-averaged attention.
AttentionRows = dict[str, dict[str, jnp.ndarray]]
TokenGroups = Sequence[tuple[str, int]]


def joint_layout(groups: TokenGroups) -> dict[str, slice]:
  """Positions of each group in the joint token sequence, in the given order."""
  layout, start = {}, 0
  for name, size in groups:
    layout[name] = slice(start, start + size)
    start += size
  return layout


def split_attention(weights: jnp.ndarray, query_groups: TokenGroups, key_groups: TokenGroups) -> AttentionRows:
  """Averages [B, heads, q, k] weights over heads and splits them by group.

  Args:
    weights: attention weights whose queries are `query_groups` concatenated
      and whose keys are `key_groups` concatenated, in order.
    query_groups: (name, size) of the query token groups.
    key_groups: (name, size) of the key token groups.

  Returns:
    AttentionRows for the query groups.
  """
  mean = weights.mean(axis=1)
  query_slices, key_slices = joint_layout(query_groups), joint_layout(key_groups)
  return {q: {k: mean[:, q_slice, k_slice] for k, k_slice in key_slices.items()} for q, q_slice in query_slices.items()}


def assemble_joint_attention(
    rows: Mapping[str, Mapping[str, jnp.ndarray]], layout: Mapping[str, slice], batch_size: int
) -> jnp.ndarray:
  """Builds one layer's [B, N, N] joint attention over the joint layout.

  Groups without rows were not updated by the layer: they keep their state,
  which is attention to themselves (identity rows).
  """
  total = max(s.stop for s in layout.values())
  joint = jnp.zeros((batch_size, total, total), jnp.float32)
  for query, query_slice in layout.items():
    if query not in rows:
      size = query_slice.stop - query_slice.start
      joint = joint.at[:, query_slice, query_slice].set(jnp.eye(size, dtype=jnp.float32))
      continue
    for key, weights in rows[query].items():
      joint = joint.at[:, query_slice, layout[key]].add(weights.astype(jnp.float32))
  return joint
