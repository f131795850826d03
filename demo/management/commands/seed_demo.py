"""Seed the demo: teams, users with known passwords, and a ready API token.

Idempotent: running it again resets the demo passwords and replaces the demo token.
Refuses to run with DEBUG off unless --force, so a production site never gets demo
passwords by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from portal.accounts import services
from portal.accounts.models import ApiToken, Membership, Team, User

TEAMS = [
    ("vision", "Vision Lab", "Image models; owns most of the V100s."),
    ("nlp", "NLP Team", "Language models and embeddings."),
    ("analytics", "Analytics", "Dashboards and ad-hoc SQL on the warehouse."),
]

# username, password, first, last, language, staff, [(team, role)]
USERS = [
    ("admin", "admin-demo-pass", "Site", "Admin", "en", True, []),
    ("alice", "alice-demo-pass", "Alice", "Abe", "en", False, [("vision", "lead")]),
    ("bob", "bob-demo-pass", "Bob", "Baba", "ja", False, [("vision", "member")]),
    (
        "charlie",
        "charlie-demo-pass",
        "Charlie",
        "Chiba",
        "en",
        False,
        [("nlp", "lead"), ("analytics", "member")],
    ),
    ("dana", "dana-demo-pass", "Dana", "Doi", "ja", False, [("analytics", "lead")]),
]

DEMO_TOKEN_NAME = "demo"  # noqa: S105 (a token name, not a secret)


# team: (guaranteed GPUs, share weight) — the emulated cluster has 8 GPUs, one of them held by
# another team's notebook (not Karimasu's: kube_emulator/nodes.default.yaml), so 7 to guarantee
QUOTAS = {"vision": (4, 1.0), "nlp": (3, 1.0), "analytics": (0, 0.5)}


def _seed_scheduler(teams: dict[str, Team]) -> None:
    from scheduler.models import TeamPolicy, TeamQuota, WorkspaceImage

    # A session's workspace (docs/sessions.md): on the emulator the pod runs the stand-in
    # workspace server (python -m kube_emulator.workspace) as a real local process.
    WorkspaceImage.objects.update_or_create(
        name="demo-workspace",
        defaults={
            "title": "Demo workspace",
            "image": "karimasu/demo-workspace:1",
            "kind": WorkspaceImage.Kind.JUPYTER,
            "port": 8888,
            "command": ["python", "-m", "kube_emulator.workspace"],
            "cpu_millis": 1000,
            "memory_mb": 2048,
        },
    )

    for slug, (guaranteed, weight) in QUOTAS.items():
        TeamQuota.objects.update_or_create(
            team=teams[slug], defaults={"guaranteed_gpus": guaranteed, "share_weight": weight}
        )
        TeamPolicy.objects.get_or_create(team=teams[slug])


class Command(BaseCommand):
    help = "Create demo teams and users (with printed passwords) and a demo API token."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--force", action="store_true", help="Seed even with DEBUG off.")
        parser.add_argument(
            "--quiet-logins", action="store_true", help="Do not print the logins table."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("Refusing to seed demo users with DEBUG off (use --force).")
        now = timezone.now()
        with transaction.atomic():
            teams = {}
            for slug, name, description in TEAMS:
                teams[slug], _ = Team.objects.update_or_create(
                    slug=slug, defaults={"name": name, "description": description}
                )
            for username, password, first, last, language, staff, roles in USERS:
                user, _ = User.objects.update_or_create(
                    username=username,
                    defaults={
                        "first_name": first,
                        "last_name": last,
                        "language": language,
                        "email": f"{username}@example.com",
                        "is_staff": staff,
                        "is_superuser": staff,
                        "is_active": True,
                    },
                )
                user.set_password(password)
                user.save(update_fields=["password"])
                for slug, role in roles:
                    Membership.objects.update_or_create(
                        team=teams[slug], user=user, defaults={"role": role}
                    )
            _seed_scheduler(teams)
            alice = User.objects.get(username="alice")
            ApiToken.objects.filter(
                user=alice, name=DEMO_TOKEN_NAME, revoked_at__isnull=True
            ).update(revoked_at=now)
            _, plaintext = services.create_api_token(alice, name=DEMO_TOKEN_NAME, now=now)

        banner = _banner(plaintext)
        # Kept for `manage.py demo_banner`, which shows it again once the demo is up (the
        # processes' logs scroll this one away); demo passwords only, private to this user.
        path = Path(settings.VAR_DIR) / BANNER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(banner + "\n", encoding="utf-8")
        path.chmod(0o600)
        if options["quiet_logins"]:
            return
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write("")
        self.stdout.write(banner)


#: The file under ``VAR_DIR`` that holds the logins banner for ``demo_banner``.
BANNER_FILE = "demo-banner.txt"


def _banner(token: str) -> str:
    """The demo's logins and API token, as printed."""
    lines = ["  Logins (username / password):"]
    for username, password, _f, _l, _lang, staff, roles in USERS:
        what = "site admin" if staff else ", ".join(f"{r} of {t}" for t, r in roles)
        lines.append(f"    {username:<8} / {password:<18} {what}")
    lines += [
        "",
        f"  API token for alice: {token}",
        f"    curl -H 'Authorization: Bearer {token}' http://127.0.0.1:8000/api/v1/me/",
    ]
    return "\n".join(lines)
