"""Data schema of software version 3.0: MAC and terminate cause on sessions, structured events.

Existing events get a payload made from their message, so nothing recorded under 2.x is lost.
"""

from django.db import migrations, models


def payload_from_message(apps, schema_editor):
    """Give every older event a payload holding its message."""
    EventLog = apps.get_model("appliance_data", "EventLog")
    db = schema_editor.connection.alias
    EventLog.objects.using(db).filter(payload={}).update(
        payload=models.functions.JSONObject(msg=models.F("message"))
    )


class Migration(migrations.Migration):
    dependencies = [("appliance_data", "0002_v2_1")]

    operations = [
        migrations.AddField(
            model_name="accountingsession",
            name="mac",
            field=models.CharField(blank=True, max_length=17),
        ),
        migrations.AddField(
            model_name="accountingsession",
            name="terminate_cause",
            field=models.CharField(
                blank=True,
                choices=[
                    ("user", "User request"),
                    ("idle", "Idle timeout"),
                    ("timeout", "Session timeout"),
                    ("admin", "Admin reset"),
                    ("lost", "Lost carrier"),
                ],
                max_length=8,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="eventlog",
            name="payload",
            field=models.JSONField(default=dict),
        ),
        migrations.RunPython(payload_from_message, migrations.RunPython.noop),
    ]
