"""The committed front-end bundles (frontend/static/vendor/) are the ones package.json and
package-lock.json pin: each bundle's banner names the exact version of every package in it,
and each bundled package's licence travels with it. `make frontend` rebuilds them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
BUNDLES = {"vis-timeline": ["vis-timeline.js", "vis-timeline.css"], "chartjs": ["chartjs.js"]}


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


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_bundle_banner_matches_the_lock(bundle):
    locked = _lock()
    for filename in BUNDLES[bundle]:
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
