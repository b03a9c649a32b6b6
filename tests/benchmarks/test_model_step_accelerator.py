"""The accelerator benchmark in its quick mode on CPU: it runs, measures, profiles and forms its ratios."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def accelerator_benchmark():
  spec = importlib.util.spec_from_file_location("model_step_accelerator",
                                                os.path.join(REPO, "benchmarks", "model_step_accelerator.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_quick_run_reports_step_time_mfu_and_a_profile_per_variant(accelerator_benchmark, tmp_path, capsys):
  out = tmp_path / "figures.json"
  assert accelerator_benchmark.main(["--quick", "--precisions", "bfloat16", "--attention", "fused", "--repeats", "1",
                         "--profile_steps", "1", "--json", str(out)]) == 0
  result = json.loads(out.read_text())
  rows = {row["strategy"]: row for row in result["rows"]}
  assert sorted(rows) == ["bottleneck", "late"]  # late fusion is always measured: every ratio is against it
  for row in rows.values():
    assert "error" not in row, row.get("error")
    assert row["step_s"] > 0 and 0 < row["mfu"] < 1 and row["tflop_per_step"] > 0
    assert row["cudnn_attention"] is False  # a CPU has no cuDNN
    parts = row["profile"]["parts"]
    assert abs(sum(parts.values()) - 1.0) < 1e-6
    # The profile is attributed to the model through the ops' scopes, the attention kernel included.
    assert any(part.startswith("attention core") for part in parts), parts
    assert sum(share for part, share in parts.items() if part != "unattributed") > 0.5, parts
    # A CPU's step spends a good part of its time in layout copies XLA inserts, which have no op of ours.
    assert parts.get(accelerator_benchmark.XLA_LAYOUT, 0) > 0, parts
  assert rows["late"]["vs_late"] == 1.0 and rows["bottleneck"]["vs_late"] > 0
  assert rows["bottleneck"]["tflop_per_step"] > rows["late"]["tflop_per_step"]  # the fusion tokens cost a little
  assert "x late" in capsys.readouterr().out


def test_ratios_are_against_the_same_runs_baselines(accelerator_benchmark):
  rows = [{"strategy": s, "precision": p, "attention": a, "step_s": t} for s, p, a, t in [
      ("late", "float32", "explicit", 4.0), ("late", "float32", "fused", 2.0),
      ("late", "bfloat16", "explicit", 2.0), ("late", "bfloat16", "fused", 1.0),
      ("bottleneck", "float32", "explicit", 4.4), ("bottleneck", "bfloat16", "fused", 1.1)]]
  rows.append({"strategy": "bottleneck", "precision": "float32", "attention": "fused", "error": "no kernel"})
  accelerator_benchmark.add_ratios(rows)
  by = {(r["strategy"], r["precision"], r["attention"]): r for r in rows}
  assert by[("bottleneck", "bfloat16", "fused")]["vs_late"] == pytest.approx(1.1)
  assert by[("late", "bfloat16", "fused")]["speedup_bf16_over_fp32"] == pytest.approx(2.0)
  assert by[("late", "float32", "fused")]["speedup_fused_over_explicit"] == pytest.approx(2.0)
  assert by[("late", "float32", "explicit")]["speedup_bf16_over_fp32"] is None
  # The float32 fused bottleneck failed: the bfloat16 one has no float32 baseline, the rest still do.
  assert by[("bottleneck", "bfloat16", "fused")]["speedup_bf16_over_fp32"] is None
  assert by[("bottleneck", "float32", "explicit")]["vs_late"] == pytest.approx(1.1)
  assert "vs_late" not in by[("bottleneck", "float32", "fused")]


def test_unknown_variants_are_refused(accelerator_benchmark):
  with pytest.raises(SystemExit):
    accelerator_benchmark.parse_args(["--strategies", "early"])


def test_ops_without_a_scope_are_layout_copies_only_where_their_names_say_so(accelerator_benchmark):
  layout, unattributed = accelerator_benchmark.XLA_LAYOUT, accelerator_benchmark.UNATTRIBUTED
  for op in ("transpose_copy_fusion.5", "copy_bitcast_fusion.24", "convert_bitcast_fusion", "wrapped_convert.20",
             "copy.3", "transpose"):
    assert accelerator_benchmark.unscoped_part(op) == layout, op
  for op in ("ynn_fusion.3", "wrapped_reduce-window.2", "dot.49", "multiply_add_fusion.5", "add_convert_fusion.12",
             "fusion.12", "wrapped"):
    assert accelerator_benchmark.unscoped_part(op) == unattributed, op
