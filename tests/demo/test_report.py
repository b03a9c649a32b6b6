"""The demo's plan and verdicts, without training: which runs the L_f sweep needs, and what the report says."""

import os

import pytest

from demo import __main__ as demo_main
from demo import report


def test_sweep_reuses_the_tables_runs_of_the_same_model():
  args = demo_main.parse_args(["--quick"])
  table_runs, sweep_runs = demo_main.plan_runs(args)
  assert len(table_runs) == 10  # five variants on each of the two tasks
  # L_f = 2 is the table's bottleneck, and bottleneck from L_f = 4 = L is the table's late fusion model.
  assert [run.fusion_layer for run in sweep_runs] == [0, 1, 3]
  assert report.Run("interaction", "bottleneck", 4).model_key() == report.Run("interaction", "late").model_key()

  args = demo_main.parse_args(["--quick", "--interaction_variants", "audio", "--sweep", "2,4"])
  _, sweep_runs = demo_main.plan_runs(args)
  assert [run.fusion_layer for run in sweep_runs] == [2, 4]
  assert demo_main.plan_runs(demo_main.parse_args(["--tasks", "factorised"]))[1] == []


@pytest.mark.parametrize("argv", [["--sweep", "5"], ["--tasks", "stereo"], ["--variants", "early"], ["--jobs", "0"]])
def test_bad_arguments_are_refused(argv):
  with pytest.raises(SystemExit):
    demo_main.parse_args(argv)


def result(variant, top1, task="interaction", fusion_layer=2):
  return {"task": task, "variant": variant, "top1": top1, "fusion_layer": fusion_layer, "gflops": 0.019,
          "examples_per_s": 100.0, "loss_curve": [(20, 0.7), (40, 0.5)]}


def test_interaction_verdict_needs_fusion_inside_and_late_at_chance():
  good = [result("bottleneck", 1.0), result("cross_attention", 0.94), result("late", 0.44), result("audio", 0.5)]
  assert report.interaction_verdict(good).endswith("only fusion inside the encoder learns colour XOR pitch")
  late_too_good = good[:2] + [result("late", 0.75)]
  assert report.interaction_verdict(late_too_good).endswith("NO CLEAR WIN")
  weak_bottleneck = [result("bottleneck", 0.8), result("late", 0.5)]
  assert report.interaction_verdict(weak_bottleneck).endswith("NO CLEAR WIN")


def test_sweep_table_and_plot(tmp_path):
  sweep = [{"fusion_layer": layer, "top1": top1, "gflops": 0.0195 - 0.0003 * layer}
           for layer, top1 in enumerate((1.0, 1.0, 1.0, 0.5, 0.44))]
  table = report.format_sweep(sweep, 4)
  assert table.splitlines()[2].split() == ["0", "1.000", "0.0195"]
  assert "L_f=3: 0.50" in report.sweep_verdict(sweep, 4)
  path = report.write_sweep_plot(sweep, str(tmp_path))
  assert path == os.path.join(str(tmp_path), "lf_sweep.png") and os.path.getsize(path) > 10_000
