"""mypy on the whole tree against a burn-down list that may only shrink.

    python scripts/mypy_burndown.py            # check (make lint)
    python scripts/mypy_burndown.py --update   # write the lower counts back to the list

mypy runs strict (pyproject.toml) on every package. ``mypy-burndown.txt`` holds one
``module: count`` line for each module that still has errors. The check fails when a
module has more errors than listed, when a module not listed has any, and when any module
of the strict packages (``STRICT``) has one; when a count went down it passes and asks for
the list to be lowered (``--update``), so the list only ever shrinks.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "mypy-burndown.txt"
PACKAGES = [
    "portal",
    "scheduler",
    "querygate",
    "pipelines",
    "kube_emulator",
    "nodeagent",
    "karimasu_client",
    "demo",
]
# Packages that have no mypy error and may never get one: no burn-down entry for them.
STRICT = ("scheduler.core", "querygate.analysis", "karimasu_client", "pipelines")

HEADER = """\
# mypy's errors per module (scripts/mypy_burndown.py): may only go down. Fix some, then
# run `python scripts/mypy_burndown.py --update`. Never add a line by hand.
"""
_ERROR = re.compile(r"^(?P<path>[^:\s]+\.pyi?):\d+: error: ")


def module_of(path: str) -> str:
    """``scheduler/services/cycle.py`` -> ``scheduler.services.cycle``."""
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def count_errors(mypy_output: Iterable[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in mypy_output:
        match = _ERROR.match(line)
        if match:
            counts[module_of(match["path"])] += 1
    return counts


def parse_list(text: str) -> dict[str, int]:
    listed: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        module, sep, count = line.partition(":")
        if not sep or not count.strip().isdigit():
            raise ValueError(f"mypy-burndown.txt:{number}: expected 'module: count', got {raw!r}")
        listed[module.strip()] = int(count)
    return listed


def render_list(counts: Mapping[str, int]) -> str:
    body = "".join(f"{module}: {n}\n" for module, n in sorted(counts.items()) if n)
    return HEADER + body


def is_strict(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in STRICT)


@dataclass
class Verdict:
    grown: dict[str, tuple[int, int]] = field(default_factory=dict)  # module: (listed, now)
    new: dict[str, int] = field(default_factory=dict)
    strict: dict[str, int] = field(default_factory=dict)
    shrunk: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.grown or self.new or self.strict)


def compare(listed: Mapping[str, int], counts: Mapping[str, int]) -> Verdict:
    verdict = Verdict()
    for module, now in counts.items():
        if is_strict(module):
            verdict.strict[module] = now
        elif module not in listed:
            verdict.new[module] = now
        elif now > listed[module]:
            verdict.grown[module] = (listed[module], now)
    for module, was in listed.items():
        if is_strict(module):
            verdict.strict.setdefault(module, was)
        now = counts.get(module, 0)
        if now < was:
            verdict.shrunk[module] = (was, now)
    return verdict


def run_mypy() -> tuple[list[str], int]:
    from mypy import api

    os.chdir(ROOT)  # pyproject.toml's configuration, paths relative to the root
    stdout, stderr, status = api.run([*PACKAGES, "--no-error-summary", "--no-pretty"])
    if stderr:
        sys.stderr.write(stderr)
    return stdout.splitlines(), status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="write the lower counts back")
    args = parser.parse_args(argv)

    lines, status = run_mypy()
    if status not in (0, 1):  # 2: mypy itself failed (configuration, crash)
        print("\n".join(lines))
        print(f"mypy failed (exit {status})", file=sys.stderr)
        return 2
    counts = count_errors(lines)
    listed = parse_list(LIST.read_text()) if LIST.exists() else {}
    verdict = compare(listed, counts)

    failing = set(verdict.grown) | set(verdict.new) | set(verdict.strict)
    for line in lines:
        match = _ERROR.match(line)
        if match and module_of(match["path"]) in failing:
            print(line)
    for module, now in sorted(verdict.strict.items()):
        print(f"FAIL {module}: {now} errors in a strict package (must stay at 0)")
    for module, now in sorted(verdict.new.items()):
        print(f"FAIL {module}: {now} new errors (not in mypy-burndown.txt; fix them)")
    for module, (was, now) in sorted(verdict.grown.items()):
        print(f"FAIL {module}: {now} errors, {was} allowed by mypy-burndown.txt")
    if not verdict.ok:
        return 1
    total = sum(counts.values())
    if verdict.shrunk:
        if args.update:
            LIST.write_text(render_list(counts))
            print(f"mypy-burndown.txt lowered: {total} errors in {len(counts)} modules")
        else:
            for module, (was, now) in sorted(verdict.shrunk.items()):
                print(f"down {module}: {was} -> {now}")
            print(
                "Errors went down: lower the list with "
                "`python scripts/mypy_burndown.py --update` and commit it."
            )
    print(f"mypy: {total} errors in {len(counts)} modules, none above mypy-burndown.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
