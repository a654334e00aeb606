"""A custom objective's checkpoints are removed once its slot completes; hpo.train's kept."""

from __future__ import annotations

from conftest import hpo_cli

STUDY = '''
from hpo import Study, scientific, nuisance, choice, uniform

def objective(config, ctx):
    resumed = ctx.load_checkpoint()
    ctx.save_checkpoint(1, {"x": config["x"]})
    return config["x"] + (0 if resumed is None else 100)

study = Study(name="tidy", goal="Are checkpoints removed after a slot completes?",
              metric="loss", space={"arm": scientific(choice("a", "b")),
                                    "x": nuisance(uniform(0.0, 1.0))},
              objective=objective, trials_per_value=2)
'''


def test_completed_slots_leave_no_checkpoints_behind(tmp_path):
    (tmp_path / "tidy.py").write_text(STUDY)
    folder = tmp_path / "ckpt"
    result = hpo_cli("run", tmp_path / "tidy.py", "--storage", tmp_path / "j.log",
                     "--checkpoint-dir", folder, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert folder.is_dir()  # the study's folder was made by the saves...
    assert not list(folder.rglob("*.pt"))  # ...and each slot's was removed when it completed
