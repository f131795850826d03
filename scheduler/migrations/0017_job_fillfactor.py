"""Leave room on each page of ``scheduler_job`` for its rows' next versions (PostgreSQL).

Every scheduling cycle rewrites the reason, message, position and ETA of queued jobs (all of
them in the first cycle after a start: ~10,000 rows at issue 17's size). None of those
columns is indexed, so PostgreSQL can update a row in place on its page (a HOT update: no
new entry in any of the table's ten indexes) when the page has room; packed pages have
none. At fill factor 70 the first cycle's waiting-row UPDATE took 110 ms instead of 182 ms
(see ``benchmarks/RESULTS.md``). Only pages written from now on are filled to 70%.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE scheduler_job SET (fillfactor = 70)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE scheduler_job RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("scheduler", "0016_job_preempted_for")]

    operations = [migrations.RunPython(forwards, backwards)]
