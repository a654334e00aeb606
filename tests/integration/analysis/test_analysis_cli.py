"""``hpo report``, ``hpo seeds``, ``hpo export`` and ``hpo dashboard`` as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, SYNTHETIC_STUDY, hpo_cli
from optuna.trial import TrialState, create_trial
from optuna_dashboard import get_note

from hpo.store import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
NAME = "synthetic-v1"


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A small real study run by ``hpo run`` (3 trials per optimizer), then a failed, a pruned
    and a running trial added the way a worker would leave them. Tests copy the journal."""
    root = tmp_path_factory.mktemp("ran")
    study_file = root / "study.py"
    study_file.write_text(SYNTHETIC_STUDY.format(name=NAME, per_value=3, seed=0,
                                                 phase="explore", sleep=0.0))
    journal = root / "j.log"
    result = hpo_cli("run", study_file, "--workers", "2", "--storage", journal, cwd=root)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name=NAME, storage=open_storage(str(journal)))
    sgd = next(t for t in study.trials if t.params["optimizer"] == "sgd")
    for state, lr, attrs in (
        (TrialState.FAIL, 0.9, {"slot": 6, "diverged": True, "error": "diverged: loss is nan"}),
        (TrialState.PRUNED, 0.1, {"slot": 8}),
        (TrialState.RUNNING, 0.2, {"slot": 10}),
    ):
        study.add_trial(create_trial(state=state, params={**sgd.params, "learning_rate": lr},
                                     distributions=sgd.distributions, user_attrs=attrs))
    return study_file, journal


def _copy(ran, tmp_path):
    study_file, journal = ran
    shutil.copy(journal, tmp_path / "j.log")
    return study_file, tmp_path / "j.log"


def _load(journal):
    return optuna.load_study(study_name=NAME, storage=open_storage(str(journal)))


def _system_attrs(study):
    # Optuna 5 dropped Study.system_attrs; the dashboard's notes and plots live there.
    return study._storage.get_study_system_attrs(study._study_id)


def test_report_writes_html_prints_the_summary_and_notes_the_dashboard(ran, tmp_path):
    study_file, journal = _copy(ran, tmp_path)
    result = hpo_cli("report", study_file, "--storage", journal, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"# hpo report: {NAME}")
    assert "## Verdict" in out and "No winner" in out and "variance not measured" in out
    assert "| optimizer=sgd | 4 |" in out  # 3 complete + 1 diverged; pruned is not drawn
    assert "1 of 5 finished trials infeasible (20%): 1 diverged" in out
    assert "1 running" in out
    assert "momentum=" in out and "beta1=" in out  # conditional nuisance, per optimizer
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("* plotly.js v") == 1  # plotly.js inlined, once
    assert "<script src=" not in html  # nothing to fetch: it opens offline
    for plot in ("isolation", "axis-learning_rate", "axis-momentum", "axis-beta1",
                 "infeasible", "enough", "curves"):
        assert f'id="plot-{plot}"' in html
    assert (tmp_path / "report" / "summary.md").read_text() == out.rstrip("\n") + "\n"
    study = _load(journal)
    assert get_note(study).startswith(f"# hpo report: {NAME}")
    assert any(k.startswith("dashboard:plot_data:hpo-isolation:") for k in _system_attrs(study))


def test_report_again_replaces_the_plots_instead_of_adding(ran, tmp_path):
    study_file, journal = _copy(ran, tmp_path)
    for _ in range(2):
        result = hpo_cli("report", study_file, "--storage", journal, "--out", tmp_path / "r")
        assert result.returncode == 0
    keys = [k for k in _system_attrs(_load(journal)) if k.startswith("dashboard:plot_data:")]
    assert len({k.split(":")[2] for k in keys}) == 7  # one per plot id


def test_no_dashboard_writes_nothing_to_storage(ran, tmp_path):
    study_file, journal = _copy(ran, tmp_path)
    before = journal.read_bytes()
    result = hpo_cli("report", study_file, "--storage", journal, "--out", tmp_path / "r",
                     "--no-dashboard")
    assert result.returncode == 0, result.stderr
    assert journal.read_bytes() == before


def test_report_can_store_itself_as_a_dashboard_artifact(ran, tmp_path):
    study_file, journal = _copy(ran, tmp_path)
    result = hpo_cli("report", study_file, "--storage", journal, "--out", tmp_path / "r",
                     "--artifact-dir", tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr
    meta = optuna.artifacts.get_all_artifact_meta(_load(journal))
    assert [m.filename for m in meta] == ["report.html"]
    assert len(list((tmp_path / "artifacts").iterdir())) == 1


@pytest.mark.parametrize("case", ["no storage file", "unknown study", "changed space",
                                  "out is a file"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(ran, tmp_path, case):
    study_file, journal = _copy(ran, tmp_path)
    args = ["--out", tmp_path / "r"]
    if case == "no storage file":
        journal = tmp_path / "typo.log"
    elif case == "unknown study":
        other = tmp_path / "other.py"
        other.write_text(study_file.read_text().replace(NAME, "nobody-v1"))
        study_file = other
    elif case == "changed space":
        other = tmp_path / "other.py"
        other.write_text(study_file.read_text().replace("log_uniform(1e-4, 1.0)",
                                                        "log_uniform(1e-5, 1.0)"))
        study_file = other
    else:
        (tmp_path / "r").write_text("a file")
    before = journal.read_bytes() if journal.exists() else None
    for command in (["report", *args], ["seeds"], ["export"]):
        if case == "out is a file" and command[0] != "report":
            continue
        result = hpo_cli(*command[:1], study_file, "--storage", journal, *command[1:])
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("hpo: error: ")
        if before is None:
            assert not journal.exists()
        else:
            assert journal.read_bytes() == before
    if case == "unknown study":
        assert f"it holds: {NAME}" in result.stderr
    if case == "changed space":
        assert "different search space" in result.stderr


def test_seeds_are_run_by_workers_and_used_by_the_report(ran, tmp_path):
    study_file, journal = _copy(ran, tmp_path)
    result = hpo_cli("seeds", study_file, "--storage", journal, "--top", "1", "--repeats", "3")
    assert result.returncode == 0, result.stderr
    assert "enqueued 6 seed re-run(s)" in result.stderr
    planned = {t.number: t.user_attrs["seed"] for t in _load(journal).trials
               if t.state == TrialState.WAITING and "seed_rerun_of" in t.user_attrs}
    assert len(planned) == 6
    # The running trial left behind (slot 10) is outside the budget of 6: a worker ignores it.
    result = hpo_cli("run", study_file, "--workers", "2", "--storage", journal)
    assert result.returncode == 0, result.stderr
    adam = next(line.split() for line in result.stdout.splitlines()
                if line.startswith("optimizer=adam"))
    assert adam[1] == "3"  # hpo run's summary: finished design trials, re-runs not counted
    study = _load(journal)
    for number, seed in planned.items():
        t = study.trials[number]
        assert t.state == TrialState.COMPLETE and t.user_attrs["seed"] == seed
        original = study.trials[t.user_attrs["seed_rerun_of"]]
        assert {k: v for k, v in t.params.items()} == original.params
    result = hpo_cli("report", study_file, "--storage", journal, "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert "6 of 6 seed re-runs complete" in result.stdout
    assert "not measured" not in result.stdout
    assert "| optimizer=sgd | 4 |" in result.stdout  # re-runs are not design trials


def test_export_csv_has_one_row_per_trial_with_columns_tagged_by_role(ran, tmp_path):
    import csv
    import io

    study_file, journal = _copy(ran, tmp_path)
    result = hpo_cli("export", study_file, "--storage", journal, "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(_load(journal).trials) == 9
    columns = rows[0].keys()
    for column in ("number", "state", "design", "scientific.optimizer", "nuisance.learning_rate",
                   "nuisance.momentum", "nuisance.beta1", "fixed.sleep", "metric.loss",
                   "attr.slot", "attr.seed"):
        assert column in columns
    adam = next(r for r in rows if r["scientific.optimizer"] == "adam")
    assert adam["nuisance.momentum"] == "" and adam["nuisance.beta1"] != ""  # conditional
    assert {r["state"] for r in rows} == {"COMPLETE", "FAIL", "PRUNED", "RUNNING"}
    assert all(r["fixed.sleep"] == "0.0" for r in rows)


def test_export_json_to_a_file(ran, tmp_path):
    study_file, journal = _copy(ran, tmp_path)
    out = tmp_path / "trials.json"
    result = hpo_cli("export", study_file, "--storage", journal, "--format", "json", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 9
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert all(isinstance(r["metric.loss"], float) for r in complete)
    assert all(r["metric.loss"] is None for r in rows if r["state"] != "COMPLETE")


def test_export_parquet(ran, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="parquet export needs pyarrow")
    study_file, journal = _copy(ran, tmp_path)
    out = tmp_path / "trials.parquet"
    assert hpo_cli("export", study_file, "--storage", journal, "--format", "parquet",
                   "--out", out).returncode == 0
    assert pq.read_table(out).num_rows == 9


def test_export_parquet_without_pyarrow_says_how_to_fix_it(ran, tmp_path):
    study_file, journal = _copy(ran, tmp_path)
    code = ("import sys; sys.modules['pyarrow'] = None; from hpo.cli import main; "
            f"sys.exit(main(['export', {str(study_file)!r}, '--storage', {str(journal)!r}, "
            f"'--format', 'parquet', '--out', {str(tmp_path / 'x.parquet')!r}]))")
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert "pip install pyarrow" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "x.parquet").exists()


def test_dashboard_listens_on_loopback_and_warns_when_widened(ran, tmp_path, monkeypatch, capsys):
    import optuna_dashboard

    from hpo.cli import main

    calls = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kw: calls.append(kw))
    _, journal = _copy(ran, tmp_path)
    assert main(["dashboard", "--storage", str(journal), "--port", "8099",
                 "--artifact-dir", str(tmp_path / "a")]) == 0
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8099
    assert calls[-1]["artifact_store"] is not None and (tmp_path / "a").is_dir()
    assert "warning" not in capsys.readouterr().err
    assert main(["dashboard", "--storage", str(journal), "--host", "0.0.0.0",
                 "--artifact-dir", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert calls[-1]["host"] == "0.0.0.0"
    assert "warning" in err and "no authentication" in err and "delete" in err


def test_dashboard_refuses_a_storage_that_does_not_exist(tmp_path):
    result = hpo_cli("dashboard", "--storage", tmp_path / "typo.log",
                     "--artifact-dir", tmp_path / "a")
    assert result.returncode == 2
    assert "no such journal file" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "typo.log").exists()


def test_report_on_the_demo_study(tmp_path):
    """The real demo (digits, SGD vs Adam), 4 trials, then its report."""
    demo = ROOT / "studies" / "digits_optimizer.py"
    journal = tmp_path / "demo.log"
    result = hpo_cli("run", demo, "--workers", "2", "--trials", "4", "--storage", journal,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = hpo_cli("report", demo, "--storage", journal, "--out", tmp_path / "report",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("# hpo report: digits-optimizer-v1")
    for heading in ("## Verdict", "## Isolation", "## Search-space boundaries",
                    "## Infeasible trials", "## Enough trials?", "## Training curves"):
        assert heading in out
    assert "optimizer=sgd_momentum" in out and "optimizer=adam" in out
    assert "`max_train_steps=1500`" in out  # the fixed values, as caveats
    assert "trial #" in out.split("## Training curves")[1]  # the best trials, diagnosed
    html = Path(tmp_path / "report" / "report.html")
    assert html.stat().st_size > 1_000_000  # plotly.js inside: self-contained
    assert "digits-optimizer-v1" in html.read_text()


def test_the_analysis_commands_help_imports_neither_plotly_nor_torch():
    import subprocess

    code = ("import sys; from hpo.cli import main\n"
            "for c in ('report', 'seeds', 'dashboard', 'export'):\n"
            "    try: main([c, '--help'])\n"
            "    except SystemExit: pass\n"
            "print('plotly' in sys.modules, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("False False"), result.stdout + result.stderr


def test_a_reader_that_stops_early_is_not_an_error(ran, tmp_path):
    """`hpo report | head`: the pipe closes before the report is printed."""
    study_file, journal = _copy(ran, tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "hpo", "report", str(study_file), "--storage", str(journal),
         "--out", str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before the first line
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
