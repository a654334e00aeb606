"""The seams of the package hold: storage behind hpo.store, Optuna's private names in one
module, every HPO_* variable validated, hpo's own attribute keys protected."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import hpo_cli

PACKAGE = Path(__file__).resolve().parents[2] / "hpo"
PRIVATE = re.compile(r"\._(storage|backend|get_trials|trial_id|study_id)\b")


def modules(under: Path = PACKAGE) -> list[Path]:
    return sorted(under.rglob("*.py"))


def test_optunas_private_names_are_used_only_inside_the_store():
    outside = [f"{p.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
               for p in modules() if "store" not in p.relative_to(PACKAGE).parts
               for n, line in enumerate(p.read_text().splitlines(), 1) if PRIVATE.search(line)]
    assert outside == []


def test_no_module_probes_a_storage_with_hasattr():
    probes = [f"{p.relative_to(PACKAGE.parent)}:{n}" for p in modules()
              for n, line in enumerate(p.read_text().splitlines(), 1) if "hasattr(" in line]
    assert probes == []


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_a_study_definition_knows_no_database():
    for name in ("study.py", "space.py", "design.py"):
        assert not {m for m in imported(PACKAGE / name) if m.startswith("hpo.store")}, name


def test_every_hpo_variable_read_in_the_package_is_declared_in_env():
    from hpo import env

    read = {m for p in modules() for m in re.findall(r'"(HPO_[A-Z_]+)"', p.read_text())}
    assert read <= set(env.VARIABLES), read - set(env.VARIABLES)
    # ...and nothing reads os.environ for one directly: it goes through hpo.env.
    direct = [f"{p.relative_to(PACKAGE.parent)}:{n}" for p in modules() if p.name != "env.py"
              for n, line in enumerate(p.read_text().splitlines(), 1)
              if re.search(r"os\.environ(\.get)?\(?\[?[\"'](HPO_|\w+_ENV)", line)]
    assert direct == []


@pytest.mark.parametrize("name, value", [
    ("HPO_MAX_RETRY", "three"), ("HPO_STARTUP_SECONDS", "-1"),
    ("HPO_HEARTBEAT_INTERVAL", "0"), ("HPO_HEARTBEAT_GRACE", "1.5"),
    ("HPO_DB_PATIENCE", "soon"),
])
def test_a_bad_variable_is_one_line_and_exit_2_with_nothing_written(tmp_path, study_file,
                                                                   name, value):
    journal = tmp_path / "j.log"
    result = hpo_cli("run", study_file(), "--storage", journal, env={name: value},
                     cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hpo: error: ${name}={value!r}: expected")
    assert not journal.exists()


def test_env_parses_good_values_and_defaults(monkeypatch):
    from hpo import env

    monkeypatch.setenv("HPO_MAX_RETRY", "0")
    monkeypatch.setenv("HPO_DB_PATIENCE", "2.5")
    monkeypatch.delenv("HPO_HEARTBEAT_GRACE", raising=False)
    assert (env.max_retry(), env.db_patience(), env.heartbeat_grace()) == (0, 2.5, 60)


class _Trial:
    number = 0
    user_attrs: dict = {}

    def __init__(self):
        self.written = {}

    def set_user_attr(self, key, value):
        self.written[key] = value


@pytest.mark.parametrize("key", ["slot", "seed", "seed_rerun_of", "worker_pid", "error"])
def test_set_attr_refuses_the_keys_hpo_relies_on(key):
    from hpo import Context, HpoError

    trial = _Trial()
    ctx = Context(trial, seed=1, study_name="s")  # type: ignore[arg-type]
    with pytest.raises(HpoError, match=f"'{key}' is one of hpo's own trial attributes"):
        ctx.set_attr(key, 3)
    ctx.set_attr("my_slot", 3)
    assert trial.written == {"my_slot": 3}


def test_every_variable_is_documented_with_its_default():
    """docs/environment.md's table has one row per variable hpo.env declares, no more,
    and states the same default."""
    from hpo import env

    page = (PACKAGE.parent / "docs" / "environment.md").read_text()
    rows = {}
    for line in page.splitlines():
        match = re.match(r"\| `(HPO_[A-Z_]+)` \| ([^|]*) \|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    assert set(rows) == set(env.VARIABLES)
    for name, variable in env.VARIABLES.items():
        if variable.default.replace(".", "").isdigit():  # numbers must match exactly
            assert rows[name] == variable.default, name


def test_the_readme_is_the_front_door():
    readme = (PACKAGE.parent / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "make demo" in readme and "make test" in readme
