"""Write-only secrets in the admin, for every user (superusers included).

A model's encrypted fields (askpro.crypto.EncryptedTextField) are never rendered: not as a
form value, a read-only field, a list column, a search or filter, nor in the history. What a
person sees instead is whether the secret is set, when it was last changed and a short keyed
fingerprint. Someone who may change the object gets an empty password input (empty keeps the
stored value) and a "clear" checkbox.

The system check below makes every ModelAdmin of a model with secrets use SecretFieldsAdmin,
so a new admin cannot forget it.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.core import checks
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import capfirst

from .crypto import secret_field_names, secret_fingerprint

CLEAR_SUFFIX = "_clear"
STATUS_SUFFIX = "_status"


def secret_status(obj, name: str) -> str:
    """One line about a stored secret that gives nothing of it away."""
    value = getattr(obj, name, "") if obj is not None else ""
    changed = obj.secret_changed_at(name) if obj is not None and hasattr(obj, "secret_changed_at") else None
    when = f"{timezone.localtime(changed):%Y-%m-%d %H:%M %Z}" if changed else "unknown"
    if value:
        return f"Set · last changed {when} · fingerprint {secret_fingerprint(value)}"
    if changed:
        return f"Not set (cleared {when})"
    return "Not set"


def _as_line(item) -> tuple:
    return tuple(item) if isinstance(item, (list, tuple)) else (item,)


class SecretFieldsForm:
    """Mixed into the admin's model form: an empty input keeps the stored secret (it is left out
    of cleaned_data, so construct_instance does not touch the field); "clear" empties it."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            # The form never holds the stored value: an empty input then reads as "unchanged".
            self.initial[name] = ""

    @cached_property
    def changed_data(self) -> list[str]:
        # The history says "Changed Stripe webhook secret" when it was cleared, not "Changed Clear".
        names = []
        for name in super().changed_data:
            if name.endswith(CLEAR_SUFFIX) and name[: -len(CLEAR_SUFFIX)] in self.secret_fields:
                name = name[: -len(CLEAR_SUFFIX)]
            names.append(name)
        return list(dict.fromkeys(names))

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if name not in self.fields:
                continue
            clear = cleaned.pop(f"{name}{CLEAR_SUFFIX}", False)
            value = cleaned.get(name) or ""
            if clear and value:
                self.add_error(name, "Give a new value or tick “clear”, not both.")
            elif clear:
                cleaned[name] = ""
                # Also when the input was left out of the POST: construct_instance would then
                # skip the field and keep the stored value.
                setattr(self.instance, name, "")
            elif not value:
                cleaned.pop(name, None)
        return cleaned


class SecretFieldsAdmin(admin.ModelAdmin):
    """Base ModelAdmin for a model with encrypted fields (see the module docstring)."""

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        self.secret_fields = secret_field_names(model)
        # Read-only stand-ins, resolved by the admin as attributes of this ModelAdmin.
        for name in self.secret_fields:
            setattr(self, f"{name}{STATUS_SUFFIX}", self._status_display(name))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # What sensitive_post_parameters does: error reports (the 500 e-mail, the debug page)
        # print the POST with these values masked.
        request.sensitive_post_parameters = list(self.secret_fields)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _status_display(self, name: str):
        def status(obj):
            return format_html("<span data-secret-status>{}</span>", secret_status(obj, name))

        status.__name__ = f"{name}{STATUS_SUFFIX}"
        status.short_description = capfirst(self.model._meta.get_field(name).verbose_name)
        return status

    def _may_write(self, request, obj) -> bool:
        return (
            self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)
        )

    def _swap(self, names, request, obj) -> list:
        """Secret names in a fieldset line -> a password input and a clear box (writers) or the
        status line (everyone else)."""
        out: list = []
        write = self._may_write(request, obj)
        for name in names:
            if self._is_stand_in(name):
                continue  # placed next to its secret below
            if isinstance(name, (list, tuple)):
                out.append(tuple(item for n in self._swap(name, request, obj) for item in _as_line(n)))
            elif name in self.secret_fields and write:
                # A "clear" box only where there is something to clear.
                out.append(
                    (name, f"{name}{CLEAR_SUFFIX}") if obj is not None and getattr(obj, name) else name
                )
            elif name in self.secret_fields:
                out.append(f"{name}{STATUS_SUFFIX}")
            else:
                out.append(name)
        return out

    def get_fieldsets(self, request, obj=None):
        return [
            (title, {**options, "fields": self._swap(options["fields"], request, obj)})
            for title, options in super().get_fieldsets(request, obj)
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = [
            f"{name}{STATUS_SUFFIX}" if name in self.secret_fields else name
            for name in super().get_readonly_fields(request, obj)
        ]
        if not self._may_write(request, obj):
            readonly += [f"{name}{STATUS_SUFFIX}" for name in self.secret_fields]
        return list(dict.fromkeys(readonly))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if "fields" not in kwargs:
            kwargs["fields"] = flatten_fieldsets(self.get_fieldsets(request, obj))
        if kwargs["fields"] is not None:
            # The clear boxes are added below; the model form factory must not look for them.
            kwargs["fields"] = [name for name in kwargs["fields"] if not self._is_stand_in(name)]
        base = super().get_form(request, obj, change=change, **kwargs)
        form = type(base.__name__, (SecretFieldsForm, base), {"secret_fields": self.secret_fields})
        for name in self.secret_fields:
            if name not in form.base_fields:
                continue
            model_field = self.model._meta.get_field(name)
            keep = "Leave empty to keep it." if getattr(obj, name, "") else ""
            form.base_fields[name] = forms.CharField(
                label=capfirst(model_field.verbose_name),
                required=False,
                strip=True,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text=f"{secret_status(obj, name)}. {keep}".strip()
                if obj is not None
                else model_field.help_text,
            )
            if obj is not None and getattr(obj, name):
                form.base_fields[f"{name}{CLEAR_SUFFIX}"] = forms.BooleanField(
                    label="Clear the stored value", required=False
                )
        return form

    def get_list_display(self, request):
        return [n for n in super().get_list_display(request) if n not in self.secret_fields]

    def get_list_filter(self, request):
        return [n for n in super().get_list_filter(request) if not self._names_secret(n)]

    def get_search_fields(self, request):
        return [n for n in super().get_search_fields(request) if not self._names_secret(n)]

    def get_sortable_by(self, request):
        return [n for n in super().get_sortable_by(request) if n not in self.secret_fields]

    def lookup_allowed(self, lookup, value, request=None):
        # ?calcom_api_key__startswith=... in a change-list URL must not become an oracle.
        if self._names_secret(lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    def _is_stand_in(self, name) -> bool:
        """A clear box or status line that stands in for a secret field."""
        if not isinstance(name, str):
            return False
        for suffix in (CLEAR_SUFFIX, STATUS_SUFFIX):
            if name.endswith(suffix) and name[: -len(suffix)] in self.secret_fields:
                return True
        return False

    def _names_secret(self, spec) -> bool:
        if not isinstance(spec, str):
            return False
        head = spec.lstrip("^=@").split("__", 1)[0]
        return head in self.secret_fields


@checks.register(checks.Tags.admin)
def check_secret_admins(app_configs=None, *, site=None, **kwargs) -> list[checks.CheckMessage]:
    """Every admin (and inline) of a model with encrypted fields must keep them write-only."""
    errors = []
    for model, model_admin in (site or admin.site)._registry.items():
        if secret_field_names(model) and not isinstance(model_admin, SecretFieldsAdmin):
            errors.append(
                checks.Error(
                    f"{type(model_admin).__name__} shows {model._meta.label}, which has encrypted fields, "
                    "without SecretFieldsAdmin: a view-only user would see the decrypted secrets.",
                    hint="Subclass askpro.admin_secrets.SecretFieldsAdmin.",
                    obj=type(model_admin),
                    id="askpro.E001",
                )
            )
        for inline in model_admin.inlines:
            if secret_field_names(inline.model):
                errors.append(
                    checks.Error(
                        f"{inline.__name__} inlines {inline.model._meta.label}, which has encrypted fields; "
                        "inlines cannot keep them write-only.",
                        hint="Edit that model on its own change page (SecretFieldsAdmin).",
                        obj=inline,
                        id="askpro.E002",
                    )
                )
    return errors
