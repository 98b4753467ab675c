from django.db import migrations, models
from django.db.models import F


def backfill_counts(apps, schema_editor):
    """Past runs: coins written count as records written; a success that skipped records was partial."""
    SyncRun = apps.get_model("market", "SyncRun")
    SyncRun.objects.update(records_ok=F("coins_upserted"))
    SyncRun.objects.filter(status="succeeded", records_skipped__gt=0).update(status="partial")


class Migration(migrations.Migration):
    dependencies = [
        ("market", "0001_initial"),
    ]

    operations = [
        migrations.RenameField(model_name="syncrun", old_name="coins_skipped", new_name="records_skipped"),
        migrations.AlterField(
            model_name="syncrun",
            name="records_skipped",
            field=models.PositiveIntegerField(default=0, help_text="Records left out; why is in `skipped`."),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="records_ok",
            field=models.PositiveIntegerField(default=0, help_text="Records (coins, trending entries) written."),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("partial", "Partial (some records skipped)"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped"),
                ],
                default="queued",
                max_length=12,
            ),
        ),
        migrations.RunPython(backfill_counts, migrations.RunPython.noop),
    ]
