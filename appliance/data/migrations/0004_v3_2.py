"""Data schema of software version 3.2: last login, faster reports, e-mail addresses in lower case."""

from django.db import migrations, models
from django.db.models.functions import Lower


def lower_case_emails(apps, schema_editor):
    """E-mail addresses compare without case from 3.2 on; store them in lower case."""
    Subscriber = apps.get_model("appliance_data", "Subscriber")
    Subscriber.objects.using(schema_editor.connection.alias).update(email=Lower("email"))


class Migration(migrations.Migration):
    dependencies = [("appliance_data", "0003_v3_0")]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="last_login",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="accountingsession",
            name="started_at",
            field=models.DateTimeField(db_index=True),
        ),
        migrations.AddIndex(
            model_name="eventlog",
            index=models.Index(fields=["source", "ts"], name="event_source_ts"),
        ),
        migrations.RunPython(lower_case_emails, migrations.RunPython.noop),
    ]
