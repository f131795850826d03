"""The k8s/ helpers behind `make k8s-demo-secrets` and `make k8s-policy` (and tests/k8s).

    python scripts/k8s.py demo-secrets          # k8s/overlays/demo/secrets.env, random values
    python scripts/k8s.py render OUTDIR         # every kustomization, rendered to OUTDIR/*.yaml

`render` works on a copy of k8s/ in a temporary folder, where it writes throwaway random
secrets.env files, so it never touches (or needs) a site's real secrets. Needs `kubectl`
(its built-in kustomize).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
# What `render` builds: the base alone (bring your own secret), and each overlay.
KUSTOMIZATIONS = {
    "base": "base",
    "production": "overlays/production",
    "demo": "overlays/demo",
}


def demo_secrets() -> str:
    """secrets.env for the demo overlay: every password random, URLs to its own services."""
    postgres, redis = secrets.token_hex(24), secrets.token_hex(24)
    return "\n".join(
        [
            f"secret-key={secrets.token_urlsafe(50)}",
            f"postgres-password={postgres}",
            f"redis-password={redis}",
            f"database-url=postgres://karimasu:{postgres}@postgres.karimasu.svc:5432/karimasu",
            f"broker-url=redis://:{redis}@redis.karimasu.svc:6379/0",
            f"cache-url=redis://:{redis}@redis.karimasu.svc:6379/1",
            "",
        ]
    )


def production_secrets() -> str:
    """A throwaway secrets.env for rendering the production overlay (never deployed)."""
    database, redis = secrets.token_hex(16), secrets.token_hex(16)
    return "\n".join(
        [
            f"secret-key={secrets.token_urlsafe(50)}",
            f"database-url=postgres://karimasu:{database}@postgres.invalid:5432/karimasu",
            f"broker-url=redis://:{redis}@redis.invalid:6379/0",
            f"cache-url=redis://:{redis}@redis.invalid:6379/1",
            "",
        ]
    )


def build(folder: Path) -> str:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise SystemExit("kubectl (with its built-in kustomize) is needed to build k8s/")
    result = subprocess.run(  # noqa: S603 (kubectl from PATH, a folder of this repo)
        [kubectl, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"kubectl kustomize {folder} failed:\n{result.stderr}")
    return result.stdout


def render(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="karimasu-k8s-") as tmp:
        copy = Path(tmp) / "k8s"
        shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
        (copy / "overlays/demo/secrets.env").write_text(demo_secrets())
        (copy / "overlays/production/secrets.env").write_text(production_secrets())
        for name, folder in KUSTOMIZATIONS.items():
            path = out / f"{name}.yaml"
            path.write_text(build(copy / folder))
            written[name] = path
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/k8s.py")
    sub = parser.add_subparsers(dest="command", required=True)
    secrets_cmd = sub.add_parser("demo-secrets", help="write k8s/overlays/demo/secrets.env")
    secrets_cmd.add_argument("--force", action="store_true", help="replace an existing file")
    render_cmd = sub.add_parser("render", help="render every kustomization into OUTDIR")
    render_cmd.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "demo-secrets":
        target = K8S / "overlays/demo/secrets.env"
        if target.exists() and not args.force:
            print(f"{target} exists; keeping it (--force replaces it)", file=sys.stderr)
            return 0
        target.write_text(demo_secrets())
        target.chmod(0o600)
        print(f"wrote {target} (random passwords; git-ignored)")
        return 0
    for name, path in render(args.outdir).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
