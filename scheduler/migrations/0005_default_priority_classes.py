"""The three priority classes every site starts with (admins add or change them)."""

from django.db import migrations

DEFAULTS = [
    ("low", -100, "Runs when nothing else waits; first to be preempted.", False),
    ("normal", 0, "The default.", True),
    ("high", 100, "Deadlines. May preempt lower, preemptible work.", False),
]


def create(apps, schema_editor):
    PriorityClass = apps.get_model("scheduler", "PriorityClass")
    for name, value, description, is_default in DEFAULTS:
        PriorityClass.objects.get_or_create(
            name=name,
            defaults={"value": value, "description": description, "is_default": is_default},
        )


def remove(apps, schema_editor):
    apps.get_model("scheduler", "PriorityClass").objects.filter(
        name__in=[d[0] for d in DEFAULTS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("scheduler", "0004_job_queue")]

    operations = [migrations.RunPython(create, remove)]
