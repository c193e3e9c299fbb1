"""The wizard's forms: what each step asks, with a visible label for every field."""

from __future__ import annotations

from typing import Any

from django import forms

from migrations_engine.accounts import accounts_read
from migrations_engine.models import CutoverMode
from migrations_engine.services import MB, Timing


class SourceForm(forms.Form):
    """Step 2: which system to migrate from, and its Admin User password."""

    address = forms.CharField(
        label="IP Address of the Source System",
        max_length=45,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="IPv4 or IPv6. All local data will be deleted and overwritten.",
    )
    password = forms.CharField(
        label="Admin User Password",
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="The source's Admin User password. Kept encrypted for this migration only.",
    )


class FingerprintForm(forms.Form):
    """Step 2, before the password goes out: the administrator confirms the source's
    certificate fingerprint."""

    fingerprint_matches = forms.BooleanField(
        label="The fingerprint above matches the one shown on the source's console",
        required=True,
    )


class OptionsForm(forms.Form):
    """Step 4: the migration options and which data to migrate."""

    swap_configuration = forms.BooleanField(label="Swap Configuration", required=False)
    migrate_licence = forms.BooleanField(label="Migrate License", required=False)
    copy_traffic_logs = forms.BooleanField(label="Copy User Traffic Logs", required=False)
    scope = forms.ChoiceField(
        label="Data to migrate",
        choices=[
            ("all", "All data"),
            ("chosen", "Only the tables chosen below"),
            ("accounts", "Only the accounts listed below, with their sessions, vouchers and logs"),
        ],
        widget=forms.RadioSelect,
        initial="all",
    )
    tables = forms.MultipleChoiceField(
        label="Tables", required=False, widget=forms.CheckboxSelectMultiple
    )
    accounts = forms.CharField(
        label="Accounts (one user name per line)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
    )
    cutover_mode = forms.ChoiceField(
        label="Begin the maintenance window (the cutover)",
        choices=CutoverMode.choices,
        widget=forms.RadioSelect,
        initial=CutoverMode.CAUGHT_UP,
        required=False,
    )
    cutover_at = forms.DateTimeField(
        label="Cutover time",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M"],
    )
    bandwidth_limit = forms.FloatField(
        label="Limit the migration's traffic to (MB/s, blank for none)",
        required=False,
        min_value=0.1,
    )

    def __init__(
        self, *args: Any, tables: list[tuple[str, str]], licence_refusal: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        fields: Any = self.fields
        fields["tables"].choices = tables
        if licence_refusal:
            fields["migrate_licence"].disabled = True
            fields["migrate_licence"].help_text = f"Not available: {licence_refusal}"

    def chosen_tables(self) -> list[str] | None:
        """The tables ticked, or None (all data, or accounts)."""
        if self.cleaned_data["scope"] != "chosen":
            return None
        return list(self.cleaned_data["tables"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("cutover_mode") == CutoverMode.AT and not cleaned.get("cutover_at"):
            self.add_error("cutover_at", "Give the time of the cutover.")
        return cleaned

    def timing(self) -> Timing:
        """The cutover and traffic limit chosen."""
        limit = self.cleaned_data.get("bandwidth_limit")
        return Timing(
            cutover_mode=self.cleaned_data.get("cutover_mode") or CutoverMode.CAUGHT_UP,
            cutover_at=self.cleaned_data.get("cutover_at"),
            bandwidth_limit=int(limit * MB) if limit else None,
        )

    def chosen_accounts(self) -> list[str] | None:
        """The accounts listed, or None (all data, or tables)."""
        if self.cleaned_data["scope"] != "accounts":
            return None
        return accounts_read(self.cleaned_data["accounts"].splitlines())


class ConfirmationForm(forms.Form):
    """Step 5: the administrator types the source's host name to start the run."""

    host_name = forms.CharField(
        label="Type the source's host name to confirm",
        max_length=255,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
