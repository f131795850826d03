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
# The calendar's bundle has its own builder (JS and CSS, licences in LICENSES/).
TIMELINE = {"vis-timeline": ["vis-timeline.js", "vis-timeline.css"]}
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


def _lock() -> dict[str, str]:
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    return {
        key.removeprefix("node_modules/"): value["version"]
        for key, value in lock["packages"].items()
        if key.startswith("node_modules/")
    }


def test_package_json_pins_exact_versions_that_the_lock_holds():
    package = json.loads((FRONTEND / "package.json").read_text())
    locked = _lock()
    pinned = package["devDependencies"]
    assert list(pinned) == sorted(pinned)
    for name, version in pinned.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned exactly"
        assert locked[name] == version


@pytest.mark.parametrize("bundle", sorted(TIMELINE))
def test_bundle_banner_matches_the_lock(bundle):
    locked = _lock()
    for filename in TIMELINE[bundle]:
        head = (FRONTEND / "static" / "vendor" / bundle / filename).read_text()[:1000]
        match = re.match(r"/\*! karimasu vendor bundle ([\w-]+): ([^(]+) \(licences", head)
        assert match, f"{bundle}/{filename} has no version banner"
        assert match.group(1) == bundle
        named = dict(item.rsplit("@", 1) for item in match.group(2).split())
        assert named, filename
        for package, version in named.items():
            assert locked.get(package) == version, f"{filename}: {package}@{version} not locked"
            licences = FRONTEND / "static" / "vendor" / bundle / "LICENSES"
            stem = package.replace("@", "").replace("/", "__")
            assert any(p.name.startswith(stem + ".") for p in licences.iterdir()), package
