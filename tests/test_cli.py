"""The `workbench` command line: the data subcommand and error reporting."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_train_refuses_zero_epochs_and_a_tiny_limit_before_writing_anything(tmp_path, capsys):
    """--epochs 0 left a half-made run folder that later refused --epochs 1; --limit 0 trained on everything."""
    for flags, words in [(["--epochs", "0"], "--epochs: must be a whole number of at least 1, received '0'"),
                         (["--epochs", "-1"], "received '-1'"), (["--limit", "0"], "--limit: must be a whole number of at "
                                                                 "least 100"), (["--batch-size", "x"], "received 'x'")]:
        with pytest.raises(SystemExit) as stopped:
            cli.main(["train", "--runs-dir", str(tmp_path / "runs"), *flags])
        assert stopped.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
