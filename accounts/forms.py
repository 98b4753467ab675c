"""Browser forms: each error lands beside its field."""

import zoneinfo

from django import forms

from .models import User


class LoginForm(forms.Form):
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class RegisterForm(forms.Form):
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    display_name = forms.CharField(max_length=80, required=False, label="Display name", help_text="Optional.")
    password = forms.CharField(
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not only digits; not a common password.",
    )


class ForgotPasswordForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))


class SetPasswordForm(forms.Form):
    new_password = forms.CharField(
        strip=False, label="New password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )


class ChangePasswordForm(SetPasswordForm):
    old_password = forms.CharField(
        strip=False, label="Current password", widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    field_order = ["old_password", "new_password"]


class ProfileForm(forms.ModelForm):
    timezone = forms.ChoiceField(choices=[(name, name) for name in sorted(zoneinfo.available_timezones())])
    current_password = forms.CharField(
        strip=False,
        required=False,
        label="Current password",
        help_text="Needed only to change your email address.",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    field_order = ["email", "current_password", "display_name", "base_currency", "timezone"]

    class Meta:
        model = User
        fields = ["email", "display_name", "base_currency", "timezone"]
        labels = {"base_currency": "Base currency", "display_name": "Display name"}

    def validate_unique(self) -> None:
        """Uniqueness is checked case-insensitively by the service."""
