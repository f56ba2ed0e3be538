"""The console script exists and every command and group answers --help."""

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from engine.cli import app


def _all_command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _all_command_paths(sub, prefix + (name,))
    return paths


def test_every_command_has_help():
    root = typer.main.get_command(app)
    paths = _all_command_paths(root)
    assert len(paths) > 3
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_console_script_installed():
    script = Path(sys.executable).parent / "sam3-engine"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "world" in out.stdout and "model" in out.stdout


def test_layout_packages_importable():
    import engine, model, ontology, storage, verifiers  # noqa: F401

    root = Path(__file__).resolve().parents[1]
    for folder in ("dags", "infra", "tests", "bench"):
        assert (root / folder).is_dir(), folder
