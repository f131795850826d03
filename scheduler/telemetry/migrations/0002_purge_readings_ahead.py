"""Delete telemetry rows dated ahead of the clock (issue #12).

Before ingestion refused readings outside [now - retention, now + skew], a node could store a
reading dated year 10000 in UTC, which psycopg cannot read back (every page listing GPUs
answered 500), or years ahead, which froze the GPU's latest state. The filters run in the
database, so the rows are deleted without being read.
"""

from datetime import timedelta

from django.db import migrations
from django.utils import timezone


def purge_readings_ahead(apps, schema_editor):
    limit = timezone.now() + timedelta(days=1)
    apps.get_model("telemetry", "GpuSample").objects.filter(at__gt=limit).delete()
    apps.get_model("telemetry", "GpuMinute").objects.filter(minute__gt=limit).delete()
    apps.get_model("telemetry", "GpuState").objects.filter(at__gt=limit).delete()
    apps.get_model("telemetry", "NodeAgentState").objects.filter(last_reading_at__gt=limit).delete()
    summaries = apps.get_model("telemetry", "JobUtilization").objects
    summaries.filter(last_at__gt=limit).delete()


class Migration(migrations.Migration):
    dependencies = [("telemetry", "0001_initial")]

    operations = [migrations.RunPython(purge_readings_ahead, migrations.RunPython.noop)]
