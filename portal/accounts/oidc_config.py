"""Parsing of the single sign-on settings (no Django imports: settings.py uses it)."""

from __future__ import annotations

ROLES = ("member", "lead")


def parse_group_teams(text: str) -> dict[str, tuple[str, str]]:
    """'g1=vision:lead,g2=nlp' -> {'g1': ('vision', 'lead'), 'g2': ('nlp', 'member')}."""
    mapping: dict[str, tuple[str, str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        group, _, target = item.partition("=")
        slug, _, role = target.partition(":")
        role = role.strip() or "member"
        if not group.strip() or not slug.strip() or role not in ROLES:
            raise ValueError(f"expected group=team[:member|lead], got {item!r}")
        mapping[group.strip()] = (slug.strip(), role)
    return mapping
