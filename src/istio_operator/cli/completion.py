"""`istio-operator completion bash|zsh|fish`: a shell completion script.

The script is generated from the command's own parser, so it completes every
subcommand (nested ones such as `localcluster up` too), their options, and the
values of options with fixed choices (`--log-format text|json`). It is a table
of words per command path, looked up by a small function in each shell.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PROG = "istio-operator"
SHELLS = ("bash", "zsh", "fish")


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    takes_value: bool
    choices: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class Command:
    """One command path (`istio-operator localcluster up`): its subcommands and options."""

    path: tuple[str, ...]
    subcommands: dict[str, str]  # name -> help
    options: tuple[Option, ...]

    @property
    def key(self) -> str:
        return " ".join(self.path)

    def words(self) -> list[str]:
        return [*self.subcommands, *(flag for o in self.options for flag in o.flags)]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script for the shell named, completing subcommands, "
        "their options and the values of options with fixed choices. Load it with "
        "`source <(istio-operator completion bash)` (bash, zsh) or "
        "`istio-operator completion fish | source` (fish).",
    )
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from istio_operator.cli.main import build_parser

    sys.stdout.write(script(args.shell, build_parser()))
    return 0


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script of `parser` for `shell`."""
    commands = list(walk(parser, (PROG,)))
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](commands)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[Command]:
    """Every command path under `parser`, this one first."""
    subcommands: dict[str, str] = {}
    nested: dict[str, argparse.ArgumentParser] = {}
    options: list[Option] = []
    for action in parser._actions:  # argparse has no public view of its actions
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                subcommands[name] = helps.get(name, "")
                nested[name] = sub
        elif action.option_strings:
            options.append(
                Option(
                    tuple(action.option_strings),
                    takes_value=action.nargs != 0,
                    choices=tuple(str(c) for c in action.choices or ()),
                    help=action.help if action.help and action.help != argparse.SUPPRESS else "",
                )
            )
    yield Command(path, subcommands, tuple(options))
    for name, sub in nested.items():
        yield from walk(sub, (*path, name))


def _words(command: Command) -> str:
    return " ".join(command.words())


def _choices(commands: list[Command]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(`path option`, its choices) for each option with fixed choices."""
    for command in commands:
        for option in command.options:
            for flag in option.flags if option.choices else ():
                yield f"{command.key} {flag}", option.choices


def _bash(commands: list[Command]) -> str:
    words = "\n".join(f"        [{shlex.quote(c.key)}]={shlex.quote(_words(c))}" for c in commands)
    choices = "\n".join(
        f"        [{shlex.quote(key)}]={shlex.quote(' '.join(values))}"
        for key, values in _choices(commands)
    )
    return f"""# bash completion for {PROG}: source <({PROG} completion bash)
_istio_operator_complete() {{
    local -A words=(
{words}
    )
    local -A choices=(
{choices}
    )
    local path={PROG} i key
    for ((i = 1; i < COMP_CWORD; i++)); do
        key="$path ${{COMP_WORDS[i]}}"
        [[ -n "${{words[$key]+set}}" ]] && path=$key
    done
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev="$path ${{COMP_WORDS[COMP_CWORD-1]}}"
    if [[ -n "${{choices[$prev]+set}}" ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${{choices[$prev]}}" -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -W "${{words[$path]}}" -- "$cur")
    fi
}}
complete -o default -F _istio_operator_complete {PROG}
"""


def _zsh(commands: list[Command]) -> str:
    words = "\n".join(f"        {shlex.quote(c.key)} {shlex.quote(_words(c))}" for c in commands)
    choices = "\n".join(
        f"        {shlex.quote(key)} {shlex.quote(' '.join(values))}"
        for key, values in _choices(commands)
    )
    # `path` is special in zsh (it is $PATH as an array): the command path is `at`.
    return f"""#compdef {PROG}
# zsh completion for {PROG}: source <({PROG} completion zsh), after compinit
_istio_operator() {{
    local -A table choices
    table=(
{words}
    )
    choices=(
{choices}
    )
    local at={PROG} key i
    for (( i = 2; i < CURRENT; i++ )); do
        key="$at ${{words[i]}}"
        (( ${{+table[$key]}} )) && at=$key
    done
    key="$at ${{words[CURRENT-1]}}"
    if (( ${{+choices[$key]}} )); then
        compadd -- ${{=choices[$key]}}
    else
        compadd -- ${{=table[$at]}}
    fi
}}
compdef _istio_operator {PROG}
"""


def _fish(commands: list[Command]) -> str:
    paths = " ".join(shlex.quote(c.key) for c in commands)
    lines = [
        f"# fish completion for {PROG}: {PROG} completion fish | source",
        f"set -g __istio_operator_paths {paths}",
        "function __istio_operator_path",
        f"    set -l at {PROG}",
        "    for word in (commandline -opc)[2..-1]",
        '        if contains -- "$at $word" $__istio_operator_paths',
        '            set at "$at $word"',
        "        end",
        "    end",
        "    echo $at",
        "end",
        f"complete -c {PROG} -f",
    ]
    for command in commands:
        # Command names are plain words: single quotes inside the condition suffice.
        at = f"-n \"test (__istio_operator_path) = '{command.key}'\""
        for name, text in command.subcommands.items():
            lines.append(f"complete -c {PROG} {at} -a {shlex.quote(name)} -d {_describe(text)}")
        for option in command.options:
            lines.append(f"complete -c {PROG} {at} {_fish_option(option)}")
    return "\n".join(lines) + "\n"


def _fish_option(option: Option) -> str:
    parts = []
    for flag in option.flags:
        if flag.startswith("--"):
            parts.append(f"-l {flag[2:]}")
        elif len(flag) == 2:
            parts.append(f"-s {flag[1]}")
        else:
            parts.append(f"-o {flag[1:]}")
    if option.choices:
        parts.append(f"-x -a {shlex.quote(' '.join(option.choices))}")
    elif option.takes_value:
        parts.append("-r -F")
    return " ".join([*parts, "-d", _describe(option.help)])


def _describe(text: str) -> str:
    """A description for fish: the first clause, kept short."""
    clause = text.split(";", maxsplit=1)[0].split(" (", maxsplit=1)[0]
    return shlex.quote(clause[:60])
