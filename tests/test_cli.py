import subprocess
import sys

from tinymask.cli import main


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "info" in out and "gradcheck" in out


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "conv2d" in out and "FAILED" not in out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "tinymask.cli", "info"], capture_output=True,
                         text=True, check=True)
    assert "backend: numpy" in out.stdout
