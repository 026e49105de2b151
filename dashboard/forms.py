"""The console's form, generated from an operation's params JSON Schema."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet

from askpro.models import Company
from mcp_core.discovery import params_schema
from mcp_core.limits import json_too_deep
from mcp_core.server import Operation


def _unwrap(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the non-null schema, whether null is allowed) for `anyOf: [X, {type: null}]`."""
    options = schema.get("anyOf")
    if not options:
        return schema, False
    concrete = [o for o in options if o.get("type") != "null"]
    inner = dict(concrete[0]) if len(concrete) == 1 else {"type": "object"}
    if "description" in schema:
        inner.setdefault("description", schema["description"])
    return inner, len(concrete) < len(options)


def _field(name: str, raw: dict[str, Any], required: bool) -> forms.Field:
    schema, _ = _unwrap(raw)
    help_text = schema.get("description", "")
    if "default" in raw and raw["default"] is not None:
        help_text = f"{help_text} (default: {json.dumps(raw['default'])})".strip()
    common = {"required": required, "help_text": help_text, "label": name.replace("_", " ").capitalize()}
    kind = schema.get("type")
    if "enum" in schema:
        choices = [("", "—")] + [(v, v) for v in schema["enum"]]
        return forms.ChoiceField(choices=choices, **common)
    if kind == "integer":
        return forms.IntegerField(min_value=schema.get("minimum"), max_value=schema.get("maximum"), **common)
    if kind == "number":
        return forms.FloatField(min_value=schema.get("minimum"), max_value=schema.get("maximum"), **common)
    if kind == "boolean":
        choices = [("", "— (default)"), ("true", "true"), ("false", "false")]
        return forms.TypedChoiceField(
            choices=choices, coerce=lambda v: v == "true", empty_value=None, **common
        )
    if kind == "array":
        items = schema.get("items", {})
        if "enum" in items:
            return forms.MultipleChoiceField(
                choices=[(v, v) for v in items["enum"]], widget=forms.CheckboxSelectMultiple, **common
            )
        common["help_text"] = f"{help_text} — comma-separated".strip(" —")
        return forms.CharField(**common)
    if kind == "string":
        widget = forms.Textarea(attrs={"rows": 4}) if (schema.get("maxLength") or 0) > 500 else None
        return forms.CharField(
            min_length=schema.get("minLength"), max_length=schema.get("maxLength"), widget=widget, **common
        )
    common["help_text"] = f"{help_text} — JSON".strip(" —")
    return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **common)


class ConsoleForm(forms.Form):
    """Fields from the operation's schema; blank optional fields are left out, so defaults apply."""

    def __init__(
        self,
        *args,
        op: Operation,
        tenants: QuerySet[Company] | None = None,
        tenant_bound: bool = False,
        **kwargs,
    ) -> None:
        """`tenants`: the ones the operator may act for (default: all); `tenant_bound`: the
        operator has rights only on some tenants, so every call names one."""
        super().__init__(*args, **kwargs)
        self.op = op
        self.schema = params_schema(op)
        if op.tenant_scoped or tenant_bound:
            tenants = (tenants if tenants is not None else Company.objects.order_by("name")).values_list(
                "slug", "name"
            )
            self.fields["tenant"] = forms.ChoiceField(
                choices=[("", "—")] + [(slug, f"{name} ({slug})") for slug, name in tenants],
                required=True,
                help_text="The tenant the call acts for (only those you have rights on are offered).",
            )
        required = set(self.schema.get("required", []))
        for name, raw in self.schema.get("properties", {}).items():
            self.fields[f"p_{name}"] = _field(name, raw, name in required)

    def params(self) -> dict[str, Any]:
        """The cleaned values as operation params; raises ValidationError on bad JSON."""
        params: dict[str, Any] = {}
        properties = self.schema.get("properties", {})
        for name, raw in properties.items():
            value = self.cleaned_data.get(f"p_{name}")
            if value in (None, "", []):
                continue
            schema, _ = _unwrap(raw)
            kind = schema.get("type")
            if kind == "array" and isinstance(value, str):
                parts = [p.strip() for p in value.split(",") if p.strip()]
                if schema.get("items", {}).get("type") == "integer":
                    try:
                        parts = [int(p) for p in parts]
                    except ValueError:
                        raise forms.ValidationError({f"p_{name}": "whole numbers, comma-separated"}) from None
                value = parts
            elif kind not in ("integer", "number", "boolean", "string", "array") and "enum" not in schema:
                depth = settings.REQUEST_MAX_JSON_DEPTH
                if json_too_deep(value, depth):  # json.loads would recurse until it fails
                    raise forms.ValidationError({f"p_{name}": f"JSON nested deeper than {depth} levels"})
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise forms.ValidationError({f"p_{name}": f"not valid JSON: {exc.msg}"}) from None
            params[name] = value
        return params

    def add_call_error(self, error: dict[str, Any] | None) -> None:
        """Show the orchestrator's validation_error on the field it names (a nested path on its
        top-level param), so a refused call re-renders the form with the field marked."""
        if not error or error.get("code") != "validation_error":
            return
        named = str((error.get("details") or {}).get("field", ""))
        top = named.split(".", 1)[0].split("[", 1)[0]
        key = "tenant" if top == "tenant" else f"p_{top}"
        self.add_error(key if key in self.fields else None, error.get("message", "invalid"))
