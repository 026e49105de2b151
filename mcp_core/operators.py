"""What a person signed in to the admin may do through the orchestrator.

Rights come from OperatorAccess grants (managed in the admin), attached to a user or a group:
each grant holds operation scopes and, optionally, the tenants it is limited to. For one call:

- a superuser acts with "*" as a platform principal;
- a call for a tenant acts with the union of the scopes of the user's grants that cover that
  tenant, as a principal bound to that tenant (like a tenant key: it sees no other tenant's
  records, even through operations that are not tenant-scoped);
- a call for no tenant acts with the union of the scopes of the user's grants that cover every
  tenant, as a platform principal;
- a tenant the user may not act for gives a principal with no scopes whose `tenant_ids` makes
  the pipeline refuse the call as forbidden, naming the tenant.

Calling operations from the admin at all needs the permission mcp_core.use_console.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from askpro.models import Company

from .contracts import Principal
from .models import OperatorAccess

CONSOLE_PERMISSION = "mcp_core.use_console"


@dataclass(frozen=True, slots=True)
class Grant:
    name: str
    scopes: frozenset[str]
    tenant_ids: frozenset[int] | None  # None: every tenant


def _resolve(tenant: str | int | Company) -> Company | None:
    if isinstance(tenant, Company):
        return tenant
    text = str(tenant)
    return Company.objects.filter(**({"pk": int(text)} if text.isdecimal() else {"slug": text})).first()


class OperatorRights:
    """One user's grants, read once; answers every question a page asks about them."""

    def __init__(self, user) -> None:
        self.user = user
        self.name = f"user:{user.get_username()}"
        self.is_superuser = bool(user.is_active and user.is_staff and user.is_superuser)
        self.grants: list[Grant] = [] if self.is_superuser else self._load(user)

    @staticmethod
    def _load(user) -> list[Grant]:
        # Only staff who can sign in to the admin act through it at all.
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return []
        rows = (
            OperatorAccess.objects.filter(Q(user=user) | Q(group__in=user.groups.all()))
            .prefetch_related("tenants")
            .distinct()
        )
        return [
            Grant(
                name=row.name,
                scopes=frozenset(row.scopes),
                tenant_ids=frozenset(t.pk for t in row.tenants.all()) or None,
            )
            for row in rows
        ]

    @property
    def tenant_ids(self) -> frozenset[int] | None:
        """The tenants the user may act for; None: every tenant."""
        if self.is_superuser or any(g.tenant_ids is None for g in self.grants):
            return None
        return frozenset().union(*(g.tenant_ids for g in self.grants))

    @property
    def tenant_bound(self) -> bool:
        """True if the user may act only for some tenants (and so must always name one)."""
        return self.tenant_ids is not None

    def tenants(self) -> QuerySet[Company]:
        """The tenants the user may pick (in the console)."""
        companies = Company.objects.order_by("name")
        allowed = self.tenant_ids
        return companies if allowed is None else companies.filter(pk__in=allowed)

    def principal(self, tenant: str | int | Company | None = None) -> Principal:
        """The principal the user acts as for one call for `tenant` (a slug, an id or None)."""
        user_id = self.user.pk
        if self.is_superuser:
            return Principal(kind="user", name=self.name, scopes=frozenset({"*"}), user_id=user_id)
        allowed = self.tenant_ids
        if tenant in (None, ""):
            scopes = frozenset().union(*(g.scopes for g in self.grants if g.tenant_ids is None))
            return Principal(kind="user", name=self.name, scopes=scopes, user_id=user_id, tenant_ids=allowed)
        company = _resolve(tenant)
        if company is None and allowed is None:
            # Someone who may see every tenant is told by the pipeline that there is no such tenant.
            return self.principal(None)
        if company is None or (allowed is not None and company.pk not in allowed):
            # Unknown and forbidden look the same to someone limited to some tenants.
            return Principal(
                kind="user", name=self.name, scopes=frozenset(), user_id=user_id, tenant_ids=allowed
            )
        scopes = frozenset().union(
            *(g.scopes for g in self.grants if g.tenant_ids is None or company.pk in g.tenant_ids)
        )
        return Principal(
            kind="user",
            name=self.name,
            scopes=scopes,
            user_id=user_id,
            tenant_id=company.pk,
            tenant_ids=allowed,
        )

    def reach(self) -> Principal:
        """Every scope the user holds anywhere: for listing what they might call, never for a call."""
        if self.is_superuser:
            return self.principal()
        return Principal(
            kind="user",
            name=self.name,
            scopes=frozenset().union(*(g.scopes for g in self.grants)),
            user_id=self.user.pk,
            tenant_ids=self.tenant_ids,
        )

    def summary(self) -> list[str]:
        """One line per grant, for the console page."""
        if self.is_superuser:
            return ["superuser: every scope (*) on every tenant"]
        listed = frozenset().union(*(g.tenant_ids or () for g in self.grants))
        slugs = dict(Company.objects.filter(pk__in=listed).values_list("pk", "slug"))
        lines = []
        for grant in self.grants:
            where = (
                "every tenant"
                if grant.tenant_ids is None
                else ", ".join(sorted(slugs.get(pk, str(pk)) for pk in grant.tenant_ids))
            )
            lines.append(f"{grant.name}: {' '.join(sorted(grant.scopes)) or 'no scopes'} on {where}")
        return lines


def rights_for(request) -> OperatorRights:
    """The signed-in user's rights, read once per request: an admin page asks about them for
    its queryset, every form field and every object, and must not query per row."""
    rights = getattr(request, "_operator_rights", None)
    if rights is None or rights.user.pk != request.user.pk:
        rights = OperatorRights(request.user)
        request._operator_rights = rights
    return rights


def principal_for_user(user, *, tenant: str | int | Company | None = None) -> Principal:
    """The principal a signed-in user acts as for one call for `tenant` (see the module doc)."""
    return OperatorRights(user).principal(tenant)
