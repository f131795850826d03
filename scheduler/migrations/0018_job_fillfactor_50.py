"""Half of each page of ``scheduler_job`` for its rows' next versions (PostgreSQL).

0017 left 30% of each page free. That holds the next version of only about four in ten of
a page's rows (a row is ~200 bytes), yet a cycle after a burst of submissions rewrites the
waiting fields of every queued job on the page: the rest could not be updated in place (no
HOT update) and got a new entry in each of the table's ten indexes. At fill factor 50 the
same UPDATE of 10,000 queued rows took 60-80 ms against 140-200 ms at 70 (alternating,
after ``VACUUM FULL``; ``benchmarks/RESULTS.md``). The price is room: pages written from
now on are half full, so finished jobs' rows take up to twice the pages; old pages keep
their fill until they are rewritten.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE scheduler_job SET (fillfactor = 50)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE scheduler_job SET (fillfactor = 70)")


class Migration(migrations.Migration):
    dependencies = [("scheduler", "0017_job_fillfactor")]

    operations = [migrations.RunPython(forwards, backwards)]
