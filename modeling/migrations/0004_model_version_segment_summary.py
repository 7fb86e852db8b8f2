from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("modeling", "0003_score_chunks"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="segment_summary",
            field=models.JSONField(blank=True, default=dict, verbose_name="segment summary"),
        ),
    ]
