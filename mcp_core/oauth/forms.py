"""The consent form: which tenant, which scopes (never more than the user holds there)."""

from __future__ import annotations

from django import forms
from oauth2_provider.forms import AllowForm

from askpro.models import Company

from ..operators import OperatorRights
from . import scopes as oauth_scopes

PLATFORM = ""


class ConsentForm(AllowForm):
    # What the client asked for (it may ask for nothing); the user's choice below decides.
    scope = forms.CharField(required=False, widget=forms.HiddenInput())
    tenant = forms.ChoiceField(required=False, label="Act for")
    granted = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Allow these scopes"
    )

    def __init__(self, *args, rights: OperatorRights, requested: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.rights = rights
        tenants = [(str(c.pk), f"{c.name} ({c.slug})") for c in rights.tenants()]
        # A user limited to some tenants always names one: a grant acts for one tenant.
        choices = tenants if rights.tenant_bound else [(PLATFORM, "Every tenant (platform)"), *tenants]
        self.fields["tenant"].choices = choices
        reach = rights.reach()
        own = {s for grant in rights.grants for s in grant.scopes}
        offered = [s for s in oauth_scopes.vocabulary() if oauth_scopes.covers(reach, s)]
        offered += sorted(own - set(offered))
        self.fields["granted"].choices = [(s, s) for s in offered]
        self.fields["granted"].initial = [s for s in requested if s in offered]
        if choices:
            self.fields["tenant"].initial = choices[0][0]

    def clean(self):
        data = super().clean()
        if not data.get("allow"):
            return data  # a refusal needs no choices
        tenant_text = data.get("tenant") or PLATFORM
        tenant = None
        if tenant_text != PLATFORM:
            tenant = Company.objects.filter(pk=int(tenant_text)).first()
        elif self.rights.tenant_bound:
            self.add_error("tenant", "Choose the tenant this client acts for.")
            return data
        granted = data.get("granted") or []
        if not granted:
            self.add_error("granted", "Choose at least one scope.")
            return data
        held = self.rights.principal(tenant)
        lacking = [s for s in granted if not oauth_scopes.covers(held, s)]
        if lacking:
            where = tenant.slug if tenant else "every tenant"
            self.add_error("granted", f"You do not hold {', '.join(lacking)} for {where}.")
            return data
        data["scope"] = oauth_scopes.join(granted, tenant.pk if tenant else None)
        return data
