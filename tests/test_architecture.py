"""The architecture stays as designed: import-linter's layer contracts, one base error, size limits.

The contracts live in pyproject.toml ([tool.importlinter]): model never imports workbench or
pages, pages never import model, no import cycles inside a package (grimp reads every import
statement, those inside functions included). A second test proves the check bites: it plants a
forbidden import in a copy of the tree and expects lint-imports to fail.
"""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "workbench", "pages")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_import_contracts_are_kept():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, planted", [
    ("model/train.py", "    import workbench.classify\n"),     # the model layer reaching up, inside a function
    ("pages/report.py", "    from model import runs\n"),       # a page skipping workbench
    ("workbench/limits.py", "    import workbench.api\n"),     # a cycle: api imports limits
])
def test_import_contracts_catch_a_planted_violation(tmp_path, module, planted):
    for name in (*PACKAGES, "assets"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as handle:
        handle.write(f"\n\ndef _planted():\n{planted}")
    result = lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout


def python_files():
    return sorted(p for package in ("model", "workbench") for p in (REPO / package).rglob("*.py"))


def test_no_file_over_the_line_limit():
    long = {str(p.relative_to(REPO)): n for p in python_files() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_the_line_limit():
    long = {}
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO)}:{node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_every_project_error_derives_from_one_base_with_a_code():
    from model import errors
    from workbench.api import RequestError

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
    assert len(classes) >= 8
    for cls in [*classes, RequestError]:
        assert issubclass(cls, errors.WorkbenchError)
        assert cls("message").code and cls("message", "custom").code == "custom"


def test_the_cli_catches_every_project_error_once(capsys, monkeypatch):
    """Any WorkbenchError from a handler becomes one `error:` line and exit code 2, no traceback."""
    from model.errors import ExplainError
    from workbench import cli
    from workbench.cli import commands

    def fail(_args):
        raise ExplainError("a message for the user")

    monkeypatch.setattr(commands, "run_data", fail)
    assert cli.main(["data"]) == 2
    assert capsys.readouterr().err.strip() == "error: a message for the user"
