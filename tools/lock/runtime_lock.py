"""Writes requirements-runtime.lock: the entries of requirements.lock that the operator
needs to run (the closure of pyproject's [project.dependencies]), hashes and all.

The closure is read from uv's `# via` annotations: a package is a runtime one if it is a
runtime dependency itself or something that a runtime package pulls in. The image
installs this lock, so that no test or lint tool ships in it.

    python tools/lock/runtime_lock.py           # rewrite requirements-runtime.lock
    python tools/lock/runtime_lock.py --check   # exit 1 if it is stale
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FULL_LOCK = REPO / "requirements.lock"
RUNTIME_LOCK = REPO / "requirements-runtime.lock"
PROJECT = "istio-operator"
HEADER = (
    "# The runtime part of requirements.lock (the closure of [project.dependencies]),\n"
    "# written by tools/lock/runtime_lock.py: do not edit, run it again.\n"
)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Entry:
    """One locked package: its text (requirement, hashes, via comments) and its parents."""

    name: str
    lines: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


def parse_lock(text: str) -> list[Entry]:
    entries: list[Entry] = []
    for line in text.splitlines():
        start = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if start:
            entries.append(Entry(normalize(start.group(1))))
        if not entries:
            continue  # the header
        entries[-1].lines.append(line)
        parent = re.match(r"^\s*#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)( \(|$)", line)
        if parent and parent.group(1) != "via":
            entries[-1].via.add(normalize(parent.group(1)))
    return entries


def runtime_roots(pyproject: Path = REPO / "pyproject.toml") -> set[str]:
    """The names of [project.dependencies]."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return {normalize(re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0]) for d in dependencies}


def runtime_closure(entries: list[Entry], roots: set[str]) -> set[str]:
    needed = set(roots)
    while True:
        more = {e.name for e in entries if e.name not in needed and e.via & needed}
        if not more:
            return needed
        needed |= more


def runtime_lock(text: str, roots: set[str]) -> str:
    entries = parse_lock(text)
    needed = runtime_closure(entries, roots)
    missing = roots - {e.name for e in entries}
    if missing:
        raise SystemExit(f"not in {FULL_LOCK.name}: {', '.join(sorted(missing))}")
    kept = [line for e in entries if e.name in needed for line in e.lines]
    return HEADER + "\n".join(kept) + "\n"


def main(argv: list[str]) -> int:
    wanted = runtime_lock(FULL_LOCK.read_text(), runtime_roots())
    if "--check" in argv:
        if not RUNTIME_LOCK.is_file() or RUNTIME_LOCK.read_text() != wanted:
            print(f"{RUNTIME_LOCK.name} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    RUNTIME_LOCK.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
