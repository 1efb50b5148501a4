"""The benchmark harness runs end to end on tiny sizes, so it cannot rot.

It asserts the output's structure and that every implementation's final loss is finite
and agrees with nnspec's; it never asserts a timing (those depend on the machine).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

import nnspec  # noqa: E402
from benchmarks import harness, report  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.workloads import W3_PENDING, workloads  # noqa: E402

OPTIONAL = {"torch_eager", "keras_jax"}  # skipped, with a note, where the package is missing


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    import contextlib
    import io
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["--quick", "--jobs", "2", "--out", str(out)]) == 0
    return json.loads(out.read_text()), text.getvalue()


def test_every_workload_runs_and_losses_agree(quick_run):
    results, _ = quick_run
    assert {"date", "nproc", "cpu", "jax"} <= set(results["machine"])
    ws = results["workloads"]
    expected = ["W1", "W2"] + (["W3"] if harness.w3_missing() is None else [])
    for name in expected:
        w = ws[name]
        assert w["impls"]["nnspec"]["status"] == "ok", w["impls"]["nnspec"].get("note")
        for impl, r in w["impls"].items():
            if r["status"] == "skipped":
                assert impl in OPTIONAL and r["note"], (name, impl)
                continue
            assert r["status"] == "ok", (name, impl, r.get("note"))
            assert math.isfinite(r["final_loss"]), (name, impl)
            assert r["samples_per_s"] > 0 and r["first_step_s"] > 0 and r["peak_rss_mb"] > 0
            assert len(r["losses"]) == w["epochs"]
            if impl != "nnspec":
                c = w["comparison"][impl]
                assert c["loss_agrees"], (name, impl, r["final_loss"], w["impls"]["nnspec"]["final_loss"])
                assert {"speed", "first_step", "peak_rss"} <= set(c)
                if "bar" in c:
                    assert c["passes"] is None  # --quick never judges the bars
    assert report.all_losses_finite(results)


def test_w3_is_a_sweep_or_skipped_with_its_reason(quick_run):
    results, _ = quick_run
    w3 = results["workloads"]["W3"]
    if "impls" not in w3:
        assert w3 == {"status": "skipped", "note": W3_PENDING}
    else:
        assert len(w3["impls"]["nnspec"]["sweep_losses"]) == 16


def test_front_end_latency_is_measured(quick_run):
    results, _ = quick_run
    fe = results["frontend"]
    assert fe["layers"] == 200 and fe["jax_imported"] is False
    for key in ("cli_check_s", "cli_summary_s", "check_text_s", "check_text_cold_s", "python_startup_s"):
        assert fe[key] > 0


def test_the_table_names_every_workload_and_ratio(quick_run):
    _, text = quick_run
    for word in ("W1:", "W2:", "W3", "speed ratio", "nnspec", "jax_fused", "front end"):
        assert word in text
    assert "LOSSES DIFFER" not in text


def test_w3_is_skipped_without_sweeps(monkeypatch):
    import nnspec.fit
    monkeypatch.delattr(nnspec.fit, "__getattr__", raising=False)
    monkeypatch.delattr(nnspec.fit, "fit_sweep", raising=False)
    assert harness.w3_missing() == W3_PENDING


@pytest.mark.parametrize("quick", [True, False])
def test_every_workload_spec_checks(quick):
    for w in workloads(quick).values():
        if w.lrs and harness.w3_missing() is not None:
            continue
        program = nnspec.check_text(w.spec(f"{w.name}.npz"))
        assert program.train.batch == w.batch and program.train.epochs == w.epochs
        assert w.n % w.batch == 0


def test_unknown_workloads_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--only", "W9"])
    assert exc.value.code == 2 and "unknown workload" in capsys.readouterr().err


def test_loss_agreement_is_relative():
    assert report.loss_agrees(0.21, 0.20, 0.15)
    assert not report.loss_agrees(0.30, 0.20, 0.15)
    assert not report.loss_agrees(math.nan, 0.20, 0.15)
