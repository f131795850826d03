"""The line of waiting jobs moves off the job rows (issue 17): ``QueueOrder`` holds the
last cycle's line in one row, ``Job.queue_position`` goes.

One admission moved every job below it up a place, so a busy cycle rewrote ~9,600 job rows
for their positions (and their "behind N jobs" messages): most of its time. The line is
~150 kB of bytes; PostgreSQL's default for bytea compresses it on every write (pglz: ~7 ms
for this data), so it is stored uncompressed (STORAGE EXTERNAL: ~1 ms). Positions come
back with the next cycle, which writes the line anew.
"""

from django.db import migrations, models


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE scheduler_queueorder ALTER COLUMN line SET STORAGE EXTERNAL")


class Migration(migrations.Migration):
    dependencies = [("scheduler", "0018_job_fillfactor_50")]

    operations = [
        migrations.CreateModel(
            name="QueueOrder",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("at", models.DateTimeField()),
                ("token", models.CharField(max_length=32)),
                ("line", models.BinaryField(default=b"")),
            ],
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
        migrations.RemoveField(model_name="job", name="queue_position"),
    ]
