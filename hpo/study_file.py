"""Loading a study file: run it, find its one Study, and say in one line what went wrong.

Every way this can go wrong raises :class:`StudyFileError` with one line that starts with
the file's path, so the command line can print it as is.
"""

from __future__ import annotations

import ast
import runpy
from pathlib import Path

from hpo.space import SpaceError
from hpo.study import Study

ROLE_CALLS = {"scientific", "nuisance", "fixed"}


class StudyFileError(SpaceError):
    """A study file that cannot be loaded; the message starts with the file's path."""


def load_study_file(path: str | Path) -> Study:
    """Run a study file and return the one Study it defines.

    Every way this can go wrong raises :class:`StudyFileError` with one line that starts with
    the path, so the command line can print it as is.
    """
    path = Path(path)
    if not path.is_file():
        raise StudyFileError(
            f"{path}: no such study file; give the path to a .py file that defines a Study")
    try:
        # Bytes, as Python itself reads a module: a coding cookie is honoured, and a file that
        # is not text becomes a SyntaxError below instead of a UnicodeDecodeError traceback.
        source = path.read_bytes()
    except OSError as e:
        reason = _one_line(e.strerror or e)
        raise StudyFileError(f"{path}: cannot read study file: {reason}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        line = f":{e.lineno}" if e.lineno else ""
        raise StudyFileError(f"{path}{line}: syntax error: {_one_line(e.msg)}") from None
    _check_duplicate_names(path, tree)
    try:
        # A name other than __main__, so a study file may also run itself as a script.
        namespace = runpy.run_path(str(path), run_name="__hpo_study__")
    except SpaceError as e:
        raise StudyFileError(f"{path}: {_one_line(e)}") from None
    except (Exception, SystemExit) as e:  # noqa: BLE001 - user code's errors are reported
        line = _user_line(e, path)
        raise StudyFileError(f"{path}{line}: {type(e).__name__}: {_one_line(e)}") from None
    # By identity: `alias = study` names one study twice.
    studies = list({id(v): v for v in namespace.values() if isinstance(v, Study)}.values())
    if not studies:
        raise StudyFileError(
            f"{path}: defines no Study; assign one at module level, e.g. study = Study(...)"
        )
    if len(studies) > 1:
        names = ", ".join(s.name for s in studies)
        raise StudyFileError(f"{path}: defines {len(studies)} studies ({names}); keep one per file")
    return studies[0]


def _check_duplicate_names(path: Path, tree: ast.AST) -> None:
    """Refuse a space dict that names a hyperparameter twice.

    Python keeps the last of two equal keys in a dict literal without a word, so a copied
    line whose name was not changed would silently drop a hyperparameter. The file's syntax
    tree still has both keys.
    """
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        is_space = any(isinstance(v, ast.Call) and _called_name(v.func) in ROLE_CALLS
                       for v in node.values)
        if not is_space:
            continue
        seen: set[str] = set()
        for key in node.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                if key.value in seen:
                    raise StudyFileError(
                        f"{path}:{key.lineno}: {key.value}: defined twice in the space; "
                        "each name must be unique, rename or remove one"
                    )
                seen.add(key.value)


def _called_name(func: ast.expr) -> str | None:
    """'nuisance' for nuisance(...) and for hpo.nuisance(...)."""
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _one_line(message: object) -> str:
    """A message on one line: an exception's text may span several, the CLI prints one."""
    return "; ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _user_line(error: BaseException, path: Path) -> str:
    """':LINE' of the deepest frame inside the study file, or '' if there is none."""
    tb = error.__traceback__
    line = ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line
