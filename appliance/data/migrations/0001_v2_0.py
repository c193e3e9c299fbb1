"""Data schema of software version 2.0: subscribers, accounting sessions, event log."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Subscriber",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("username", models.CharField(max_length=64, unique=True)),
                ("full_name", models.CharField(blank=True, max_length=128)),
                ("email", models.CharField(max_length=190)),
                ("password_hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
                ("is_active", models.BooleanField(default=True)),
            ],
            options={"db_table": "subscriber"},
        ),
        migrations.CreateModel(
            name="AccountingSession",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("session_id", models.CharField(max_length=64)),
                ("nas_ip", models.GenericIPAddressField()),
                ("started_at", models.DateTimeField()),
                ("stopped_at", models.DateTimeField(blank=True, null=True)),
                ("bytes_in", models.PositiveBigIntegerField(default=0)),
                ("bytes_out", models.PositiveBigIntegerField(default=0)),
                (
                    "subscriber",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, to="appliance_data.subscriber"
                    ),
                ),
            ],
            options={"db_table": "accounting_session"},
        ),
        migrations.CreateModel(
            name="EventLog",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("ts", models.DateTimeField(db_index=True)),
                ("source", models.CharField(max_length=32)),
                ("message", models.CharField(max_length=255)),
            ],
            options={"db_table": "event_log"},
        ),
    ]
