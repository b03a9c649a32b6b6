"""`python -m trainer.flops`: compute per fusion strategy, on a tiny model."""

from __future__ import annotations

import pytest

from trainer import flops

# Enough tokens that B=4 fusion tokens are a small overhead, as in the paper
# (1568 + 400 patches there): 8 frames of 64x64 -> 128 patches, 5.12 s -> 256.
TINY = dict(size="tiny", num_layers=2, num_frames=8, image_size=64, audio_seconds=5.12)


@pytest.fixture(scope="module")
def table():
  # Cost analysis of the lowered HLO (no compilation; the command-line test
  # below covers the compiled path); the two agree to about 0.1%.
  strategies = ["bottleneck", "cross_attention_eq6", "cross_attention_scenic", "late"]
  return flops.flops_table([0, 1, 2], strategies, use_compiled=False, **TINY)


def test_bottleneck_costs_about_what_late_fusion_costs(table):
  assert flops.bottleneck_violations(table) == []
  assert all(table["bottleneck"][layer] >= table["late"][layer] for layer in (0, 1, 2))


def test_scenic_way_cross_attention_costs_over_twice_the_bottleneck_at_early_fusion(table):
  assert table["cross_attention_scenic"][0] > 2 * table["bottleneck"][0]


def test_eq6_cross_attention_is_cheaper_than_the_scenic_way(table):
  for layer in (0, 1):
    assert table["cross_attention_eq6"][layer] < table["cross_attention_scenic"][layer]
  # At L_f = L nothing fuses and every strategy is late fusion.
  assert table["cross_attention_eq6"][2] == pytest.approx(table["late"][2], rel=1e-6)


def test_cost_grows_with_the_number_of_fusion_layers(table):
  scenic = table["cross_attention_scenic"]
  assert scenic[0] > scenic[1] > scenic[2]


def test_command_line_writes_table_and_plot(tmp_path, capsys):
  output = tmp_path / "flops.png"
  argv = [
      "--size", "tiny", "--frames", "8", "--image-size", "64", "--audio-seconds", "5.12",
      "--strategies", "bottleneck", "--fusion-layers", "0", "--output", str(output),
  ]
  assert flops.main(argv) == 0
  printed = capsys.readouterr().out
  assert "bottleneck" in printed and "late" in printed and "OK: bottleneck" in printed
  assert output.read_bytes().startswith(b"\x89PNG")


def test_help_exits_cleanly(capsys):
  with pytest.raises(SystemExit) as exit_info:
    flops.main(["--help"])
  assert exit_info.value.code == 0
  assert "--quick" in capsys.readouterr().out
