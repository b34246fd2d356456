"""The command line itself: `--version`, help on every subcommand, shell completion, and
the frames of `status --watch`."""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from istio_operator.cli.completion import script, walk
from istio_operator.cli.main import COMMANDS, build_parser, main
from istio_operator.cli.status import CLEAR_SCREEN, frame_header
from istio_operator.controller.runner import QuietSuccesses

# Subcommands whose description is still to be written.
WITHOUT_DESCRIPTION = {"demo"}


def test_version_is_the_packages(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == "istio-operator 0.1.0\n"


def test_version_loads_no_subcommand() -> None:
    probe = (
        "import sys\nfrom istio_operator.cli.main import build_parser\nbuild_parser('--version')\n"
        "print(sorted(m for m in sys.modules if m.startswith('istio_operator.cli.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "['istio_operator.cli.main']"


def subparsers(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, help) of every subcommand, nested ones too, and their parsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                where = f"{path} {name}".strip()
                assert helps.get(name), f"{where} has no help"
                if where.split()[0] not in WITHOUT_DESCRIPTION:
                    assert sub.description, f"{where} has no description"
                yield where, helps[name] or ""
                yield from subparsers(sub, where)


def test_every_subcommand_has_help_and_a_description() -> None:
    found = dict(subparsers(build_parser()))
    assert set(COMMANDS) <= set(found)
    assert {"localcluster up", "charts add", "completion"} <= set(found)


def test_completion_walks_every_command_path() -> None:
    commands = {c.key: c for c in walk(build_parser(), ("istio-operator",))}
    assert set(commands["istio-operator"].subcommands) == set(COMMANDS)
    assert "up" in commands["istio-operator localcluster"].subcommands
    run = commands["istio-operator run"]
    log_format = next(o for o in run.options if "--log-format" in o.flags)
    assert log_format.choices == ("text", "json") and log_format.takes_value
    verbose = next(o for o in run.options if "--verbose" in o.flags)
    assert not verbose.takes_value


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert "istio-operator" in out and "localcluster" in out
    assert ("-l log-format" if shell == "fish" else "--log-format") in out


def complete(bash_script: Path, *words: str) -> list[str]:
    """What the bash completion offers with `words` typed (the last one being completed)."""
    quoted = " ".join(f"'{w}'" for w in words)
    probe = (
        f"source {bash_script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        '_istio_operator_complete; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_completes_commands_options_and_choices(tmp_path: Path) -> None:
    path = tmp_path / "completion.bash"
    path.write_text(script("bash", build_parser()))
    assert complete(path, "istio-operator", "lo") == ["localcluster"]
    assert complete(path, "istio-operator", "localcluster", "u") == ["up"]
    assert complete(path, "istio-operator", "localcluster", "up", "--n") == ["--nodes"]
    assert complete(path, "istio-operator", "run", "--log-format", "") == ["text", "json"]
    assert complete(path, "istio-operator", "status", "-n", "x", "--wa") == ["--watch"]


def test_watch_frames_without_a_terminal_have_a_timestamped_separator() -> None:
    assert frame_header(5, tty=False, output="table", now=0) == "--- 1970-01-01T00:00:00Z ---\n"
    assert frame_header(5, tty=True, output="table", now=0).startswith(CLEAR_SCREEN)
    assert frame_header(5, tty=False, output="json") == ""


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_run_drops_kopfs_success_lines_only() -> None:
    quiet = QuietSuccesses()
    assert not quiet.filter(
        record("kopf.objects", logging.INFO, "Handler 'istio-changed' succeeded.")
    )
    assert not quiet.filter(
        record("kopf.activities.startup", logging.INFO, "Activity 'x' succeeded.")
    )
    assert quiet.filter(record("kopf.objects", logging.INFO, "Daemon 'istio-worker' succeeded."))
    assert quiet.filter(record("kopf.objects", logging.ERROR, "Handler 'istio-changed' succeeded."))
    assert quiet.filter(record("kopf.objects", logging.ERROR, "Handler 'istio-changed' failed."))
    assert quiet.filter(record("istio_operator.x", logging.INFO, "Handler 'h' succeeded."))
