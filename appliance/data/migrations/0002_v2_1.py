"""Data schema of software version 2.1: quotas and prepaid vouchers."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("appliance_data", "0001_v2_0")]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="quota_mb",
            field=models.DecimalField(decimal_places=2, default=0, max_digits=12),
        ),
        migrations.CreateModel(
            name="Voucher",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("code", models.CharField(max_length=20, unique=True)),
                ("minutes", models.PositiveIntegerField()),
                ("created_at", models.DateTimeField()),
                ("used_at", models.DateTimeField(blank=True, null=True)),
                (
                    "subscriber",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to="appliance_data.subscriber",
                    ),
                ),
            ],
            options={"db_table": "voucher"},
        ),
    ]
