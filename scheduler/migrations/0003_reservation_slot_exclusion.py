"""No two active slots of one GPU overlap in time — enforced by PostgreSQL itself.

An exclusion constraint over (gpu WITH =, [start, end) WITH &&) needs btree_gist for the
equality part. It exists only on PostgreSQL; on SQLite, `reserve_gpus` serializes writers
instead (IMMEDIATE transactions). Creating the extension needs a role allowed to: on a
managed database, run `CREATE EXTENSION btree_gist` once as the owner before migrating.
"""

from django.db import migrations

CONSTRAINT = "reservationslot_no_overlap"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    schema_editor.execute(
        f"ALTER TABLE scheduler_reservationslot ADD CONSTRAINT {CONSTRAINT} "
        "EXCLUDE USING gist (gpu_id WITH =, tstzrange(start, \"end\", '[)') WITH &&) "
        "WHERE (active)"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE scheduler_reservationslot DROP CONSTRAINT {CONSTRAINT}")


class Migration(migrations.Migration):
    dependencies = [("scheduler", "0002_reservations")]

    operations = [migrations.RunPython(forwards, backwards)]
