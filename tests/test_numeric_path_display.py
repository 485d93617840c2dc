"""The numeric path a run was computed on is shown by the report and the viewer (issue 12)."""
from sparsejax.sweep import plan as plan_lib
from sparsejax.sweep import runner
from sparsejax.viz import report, viewer


def test_report_and_viewer_show_the_numeric_path(tmp_path):
    store = str(tmp_path / "s.sqlite")
    plan = plan_lib.Plan(plan_lib.grid(method="dense", widths=[(2, 2, 2)], epochs=1, seed=[0, 1]))
    runner.run_sweep(plan, store, allow_numeric_path_change=False)
    caption, header, rows = report.numeric_path_table(store)
    assert header[1:4] == ["backend", "kernel", "compaction"]
    assert rows[0][0] == "store meta" and rows[1][0] == "2 runs" and rows[1][1] == "cpu"
    assert rows[1][2] in ("fused", "xla") and rows[1][3] == "off"
    spec = viewer.load_store_model(store, plan.ids[0])
    assert spec.meta["numeric_path.backend"] == "cpu" and spec.meta["numeric_path.kernel"] == rows[1][2]
