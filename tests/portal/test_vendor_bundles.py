"""The committed front-end bundles (frontend/static/vendor/) are what package-lock.json pins:
each bundle's banner names every package inside it with its version, and each must be the
version the lock file holds, with its licence beside the bundle. `make frontend` rebuilds
them; `make run` and `make test` only use them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
BUNDLES = sorted((FRONTEND / "static" / "vendor").glob("*/*.min.js"))
BANNER = re.compile(
    r"^/\*! Karimasu vendor bundle (\S+) \((\S+)\), built by frontend/build\.js "
    r"from: (.*)\. Licences"
)
PACKAGE = re.compile(r"((?:@[^/\s]+/)?[^@\s,]+)@(\d[^\s,]*) \(([^)]+)\)")


def _locked() -> dict[str, str]:
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    return {
        key.removeprefix("node_modules/"): value["version"]
        for key, value in lock["packages"].items()
        if key.startswith("node_modules/") and "/node_modules/" not in key
    }


def test_there_are_bundles() -> None:
    names = {path.relative_to(FRONTEND / "static" / "vendor").as_posix() for path in BUNDLES}
    assert {"codemirror/editor.min.js", "chartjs/charts.min.js"} <= names


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda path: path.parent.name)
def test_bundle_matches_the_lock_file_and_carries_licences(bundle: Path) -> None:
    first = bundle.read_text().split("\n", 1)[0]
    match = BANNER.match(first)
    assert match, f"{bundle.name} has no build banner: rebuild with `make frontend`"
    assert (FRONTEND / match.group(2)).exists()
    packages = PACKAGE.findall(match.group(3))
    assert packages
    locked = _locked()
    direct = json.loads((FRONTEND / "package.json").read_text())["devDependencies"]
    licences = (bundle.parent / "LICENSES.txt").read_text()
    for name, version, licence in packages:
        assert locked.get(name) == version, f"{name}@{version}, locked: {locked.get(name)}"
        if name in direct:
            assert direct[name] == version  # exact pins in package.json
        assert f"== {name}@{version} ==" in licences
        assert licence == "MIT"
