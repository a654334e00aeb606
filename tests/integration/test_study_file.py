"""Loading a study file, and the command line refusing bad input before it writes anything.

Every failure is a :class:`StudyFileError` (a :class:`SpaceError`) whose one-line message
starts with the file's path; the CLI prints it after ``hpo: error:`` and exits with status 2.
"""

from __future__ import annotations

import re
import warnings

import pytest
from conftest import dedent, hpo_cli

from hpo import SpaceError, SpaceWarning, Study, StudyFileError, load_study_file

HEADER = ("from hpo import Study, scientific, nuisance, fixed, choice, integer, log_uniform, "
          "uniform\n")

VALID_SPACE = """{
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
    }"""


def study_source(name="file-study-v1", space=VALID_SPACE, extra=""):
    return HEADER + (
        "def objective(config, ctx):\n"
        '    return config["learning_rate"]\n'
        f"{extra}\n"
        "study = Study(\n"
        f"    name={name!r},\n"
        '    goal="Does the loader work?",\n'
        '    metric="loss",\n'
        f"    space={space},\n"
        "    objective=objective,\n"
        "    trials_per_value=2,\n"
        ")\n"
    )


def write(tmp_path, text, filename="study.py"):
    path = tmp_path / filename
    path.write_text(text)
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the n-th line containing needle."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def load_fails(path, *fragments: str) -> StudyFileError:
    """load_study_file(path) raises a one-line StudyFileError: the fragments, in order."""
    pattern = ".*".join(re.escape(f) for f in fragments)
    with pytest.raises(StudyFileError, match=pattern) as info:
        load_study_file(path)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, f"multi-line message: {message!r}"
    assert message.startswith(str(path)), message
    return info.value


# --- a valid file --------------------------------------------------------------------------


def test_valid_file_returns_the_study(study_file):
    path = study_file(name="synthetic-v3", per_value=3, seed=5, phase="exploit")
    study = load_study_file(path)
    assert isinstance(study, Study)
    assert (study.name, study.trials_per_value, study.seed, study.phase) == (
        "synthetic-v3", 3, 5, "exploit")
    assert study.budget == 6
    assert [g["optimizer"] for g in study.space.scientific_values()] == ["sgd", "adam"]
    assert list(study.space.active_nuisance({"optimizer": "sgd"})) == ["learning_rate",
                                                                       "momentum"]

    reports = []

    class Ctx:
        def report(self, step, value):
            reports.append(step)

    config = {"sleep": 0.0, "learning_rate": 0.01, "optimizer": "sgd", "momentum": 0.5}
    assert study.objective(config, Ctx()) == pytest.approx(0.05)
    assert reports == [0, 1, 2]


def test_valid_file_accepts_a_str_path(tmp_path):
    path = write(tmp_path, study_source())
    assert load_study_file(str(path)).name == "file-study-v1"


def test_a_study_file_may_guard_a_main_block(tmp_path):
    path = write(tmp_path, study_source() + 'if __name__ == "__main__":\n    raise '
                 'SystemExit("ran as a script")\n')
    assert load_study_file(path).name == "file-study-v1"


def test_one_value_scientific_in_a_file_warns_at_the_study_line(tmp_path):
    text = study_source(space='{"optimizer": scientific(choice("adam")), '
                              '"lr": nuisance(uniform(0, 1))}')
    path = write(tmp_path, text)
    with pytest.warns(SpaceWarning, match="optimizer: scientific hyperparameter has one value "
                                          "'adam'") as record:
        study = load_study_file(path)
    assert study.budget == 2
    warning = next(w for w in record if issubclass(w.category, SpaceWarning))
    assert warning.filename == str(path)
    assert warning.lineno == line_of(text, "study = Study(")


# --- failures ------------------------------------------------------------------------------


def test_study_file_error_is_a_space_error():
    assert issubclass(StudyFileError, SpaceError)
    assert issubclass(StudyFileError, ValueError)


def test_missing_file(tmp_path):
    load_fails(tmp_path / "nope.py", "nope.py: no such study file",
               "a .py file that defines a Study")


def test_a_directory_is_not_a_study_file(tmp_path):
    load_fails(tmp_path, "no such study file")


@pytest.mark.parametrize(
    "broken, fragment",
    [
        ("study = Study(\n", "syntax error"),
        ("    x = 1\n", "syntax error"),
        ("def f(:\n", "syntax error"),
    ],
    ids=["unclosed", "indent", "bad-def"],
)
def test_syntax_error_names_the_line(tmp_path, broken, fragment):
    text = HEADER + "x = 1\n" + broken + "y = 2\n"
    path = write(tmp_path, text)
    err = load_fails(path, f"{path}:3: {fragment}")
    assert re.match(re.escape(str(path)) + r":3: syntax error: \S", str(err))


def test_file_that_is_not_text(tmp_path):
    path = tmp_path / "study.py"
    path.write_bytes(b"x = 1\n\xff\xfe = 2\n")
    load_fails(path, f"{path}:", "syntax error", "utf-8")


def test_file_with_a_null_byte(tmp_path):
    path = tmp_path / "study.py"
    path.write_bytes(b"x = 1\x00\n")
    err = load_fails(path, f"{path}", "syntax error", "null bytes")
    assert "None" not in str(err)  # no line number known: none shown, not ':None:'


def test_coding_cookie_is_honoured(tmp_path):
    path = tmp_path / "study.py"
    source = "# -*- coding: latin-1 -*-\n" + study_source(name="caf\xe9-v1")
    path.write_bytes(source.encode("latin-1"))
    assert load_study_file(path).name == "caf\xe9-v1"


def test_file_defining_no_study(tmp_path):
    path = write(tmp_path, HEADER + "space = {'lr': nuisance(uniform(0, 1))}\n")
    load_fails(path, f"{path}: defines no Study", "study = Study(...)")


def test_file_defining_two_studies(tmp_path):
    text = study_source(name="first-v1") + "second = Study(name='second-v1', goal='g', " \
        "metric='m', space={'lr': nuisance(uniform(0, 1))}, objective=objective)\n"
    path = write(tmp_path, text)
    load_fails(path, f"{path}: defines 2 studies (first-v1, second-v1)", "keep one per file")


def test_the_same_study_under_two_names_counts_once(tmp_path):
    path = write(tmp_path, study_source() + "alias = study\n")
    assert load_study_file(path).name == "file-study-v1"


@pytest.mark.parametrize(
    "code, needle, error",
    [
        ("import not_a_module_hpo_test\n", "import not_a_module", "ModuleNotFoundError"),
        ("rate = 1 / 0\n", "rate = 1 / 0", "ZeroDivisionError: division by zero"),
        ("def helper():\n    return {}['missing']\n\nvalue = helper()\n", "return {}",
         "KeyError: 'missing'"),
        ("Study(name='x')\n", "Study(name='x')", "TypeError"),
    ],
    ids=["import", "zero-division", "in-a-function", "bad-call"],
)
def test_module_code_that_raises(tmp_path, code, needle, error):
    text = HEADER + "x = 1\n" + code
    path = write(tmp_path, text)
    load_fails(path, f"{path}:{line_of(text, needle)}: {error}")


def test_exception_with_a_multi_line_message_is_one_line(tmp_path):
    text = HEADER + 'raise RuntimeError("first line\\nsecond line\\n")\n'
    path = write(tmp_path, text)
    err = load_fails(path, f"{path}:2: RuntimeError: first line", "second line")
    assert str(err).endswith("second line")


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        ({"space": '{"lr": nuisance(uniform(1.0, 0.1))}'},
         ("lr: low <= high must hold", "low=1.0, high=0.1")),
        ({"space": '{"lr": scientific(uniform(0, 1))}'},
         ("lr: a scientific hyperparameter needs a finite set",)),
        ({"space": '{"batch_size": fixed(128)}'},
         ("space has only fixed hyperparameters (batch_size)",)),
        ({"name": ""}, ("Study name: got ''",)),
    ],
    ids=["low-high", "continuous-scientific", "only-fixed", "empty-name"],
)
def test_invalid_study_in_a_file_is_prefixed_with_the_path(tmp_path, overrides, fragments):
    path = write(tmp_path, study_source(**overrides))
    err = load_fails(path, f"{path}: {fragments[0]}", *fragments[1:])
    assert isinstance(err, SpaceError)


# --- duplicate names in a space dict literal -----------------------------------------------


def test_duplicate_key_in_space_dict_names_file_line_and_name(tmp_path):
    space = """{
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.99)),
        "learning_rate": nuisance(log_uniform(1e-5, 1e-1)),
    }"""
    text = study_source(space=space)
    path = write(tmp_path, text)
    second = line_of(text, '"learning_rate": nuisance', occurrence=2)
    load_fails(path, f"{path}:{second}: "
               "learning_rate: defined twice in the space", "each name must be unique")


def test_duplicate_key_is_found_in_a_dict_assigned_before_the_study(tmp_path):
    # The file's code must not run at all: the marker file proves it.
    marker = tmp_path / "ran"
    text = HEADER + dedent(f"""
        open({str(marker)!r}, "w").close()
        SPACE = {{
            "depth": scientific(integer(2, 4)),
            "depth": scientific(integer(2, 8)),
        }}
        study = Study(name="s-v1", goal="g", metric="m", space=SPACE,
                      objective=lambda config, ctx: 0.0)
        """)
    path = write(tmp_path, text)
    load_fails(path, f"{path}:{line_of(text, 'depth', occurrence=2)}: depth: defined twice")
    assert not marker.exists()


def test_duplicate_keys_in_other_dicts_are_not_flagged(tmp_path):
    path = write(tmp_path, study_source(extra='LABELS = {"a": 1, "a": 2}'))
    assert load_study_file(path).name == "file-study-v1"


def test_load_does_not_warn_for_a_valid_file(tmp_path):
    path = write(tmp_path, study_source())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_study_file(path)


# --- the command line: status 2, one line, nothing written ---------------------------------


INVALID_SPACE = '{"lr": nuisance(uniform(1.0, 0.1))}'


@pytest.mark.parametrize(
    "command, content, expected",
    [
        ("run", "syntax", ":3: syntax error"),
        ("run", "invalid", "lr: low <= high must hold"),
        ("worker", "invalid", "lr: low <= high must hold"),
        ("run", "duplicate", "learning_rate: defined twice"),
        ("run", None, "no such study file"),
    ],
    ids=["syntax", "invalid-space", "worker-invalid-space", "duplicate-name", "missing-file"],
)
def test_cli_bad_study_file_exits_2_and_writes_nothing(tmp_path, command, content, expected):
    path = tmp_path / "study.py"
    if content == "syntax":
        path.write_text(HEADER + "x = 1\nstudy = Study(\n")
    elif content == "invalid":
        path.write_text(study_source(space=INVALID_SPACE))
    elif content == "duplicate":
        path.write_text(study_source(space='{"learning_rate": nuisance(uniform(0, 1)), '
                                           '"learning_rate": nuisance(uniform(0, 2))}'))
    storage = tmp_path / "journal.log"
    before = sorted(p.name for p in tmp_path.iterdir())

    result = hpo_cli(command, path, "--storage", storage, cwd=tmp_path, timeout=60)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hpo: error: "), lines[0]
    assert str(path) in lines[0] and expected in lines[0]
    assert result.stdout == ""
    assert not storage.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "args, bad",
    [
        (["run", "--trials", "0"], "'0'"),
        (["run", "--trials", "abc"], "'abc'"),
        (["run", "--workers", "0"], "'0'"),
    ],
    ids=["trials-0", "trials-abc", "workers-0"],
)
def test_cli_bad_number_is_a_usage_error(tmp_path, study_file, args, bad):
    path = study_file()
    storage = tmp_path / "journal.log"
    before = sorted(p.name for p in tmp_path.iterdir())

    result = hpo_cli(args[0], path, "--storage", storage, *args[1:], cwd=tmp_path, timeout=60)

    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "error:" in last and args[1] in last and bad in last, result.stderr
    assert not storage.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_unsupported_storage_scheme_hides_the_password(tmp_path, study_file):
    path = study_file()
    before = sorted(p.name for p in tmp_path.iterdir())

    result = hpo_cli("run", path, "--storage", "mysql://u:pw@h/db", cwd=tmp_path, timeout=60)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hpo: error: "), lines[0]
    assert "'mysql'" in lines[0] and "mysql://u:***@h/db" in lines[0]
    assert "pw" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "hpo-journal.log").exists()


def test_duplicate_key_is_found_with_module_qualified_roles(tmp_path):
    space = """{
        "optimizer": hpo.scientific(hpo.choice("sgd", "adam")),
        "learning_rate": hpo.nuisance(hpo.log_uniform(1e-4, 1.0)),
        "learning_rate": hpo.nuisance(hpo.log_uniform(1e-3, 1.0)),
    }"""
    path = write(tmp_path, "import hpo\n" + study_source(space=space))
    with pytest.raises(StudyFileError, match=r"study\.py:\d+: learning_rate: defined twice"):
        load_study_file(path)


def test_a_study_file_calling_sys_exit_is_an_error_not_an_exit(tmp_path):
    path = write(tmp_path, "import sys\nsys.exit(3)\n")
    with pytest.raises(StudyFileError, match=r"study\.py:2: SystemExit: 3"):
        load_study_file(path)
