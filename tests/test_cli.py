"""The `workbench` command line: the data subcommand and error reporting."""

from __future__ import annotations

import subprocess
import sys

from workbench import cli


def test_data_command_prints_counts(data_dir, capsys):
    assert cli.main(["data", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "train 55000, val 5000" in out and "test 10000" in out
    shirt = next(line for line in out.splitlines() if line.startswith("Shirt"))
    assert shirt.split()[1:] == ["5,500", "500", "6,000", "1,000"]
    assert out.count("  ok  ") == 4


def test_missing_data_dir_is_one_line_error(tmp_path, capsys):
    assert cli.main(["data", "--data-dir", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "folder not found" in err and "\n" not in err


def test_help_lists_subcommands_without_tensorflow():
    code = ("import sys; from workbench import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for command in ("data", "train", "evaluate", "serve", "predict", "export"):
        assert command in out
    assert out.strip().endswith("False")
