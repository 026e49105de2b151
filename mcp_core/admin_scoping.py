"""Admin pages show a tenant-bound operator only their tenants' rows.

A person's tenants come from their operator access grants (mcp_core.operators): superusers and
anyone with a grant on every tenant see every row, as before; someone whose grants all list
tenants sees only those tenants' rows; a staff user with no grant at all sees no tenant's rows.
In every ModelAdmin of a model that belongs to a tenant (TenantScopedAdmin):

- the change list, search, date drill-down, actions and the change, delete and history pages
  work on the user's tenants' rows only: another tenant's object is "not found", never shown;
- every ForeignKey and ManyToMany choice of a tenant model (or of Company itself) offers only
  those tenants' rows, so a row cannot be created in or moved to another tenant, and a row
  cannot point at another tenant's customer or appointment; autocomplete and raw-id pop-ups
  follow, as they ask the target model's (scoped) admin;
- list filters on such relations list only those tenants' rows.

The user's rights are read once per request (operators.rights_for), not per row.

Admins of platform-wide models that still mention tenants (a federated server's list of the
tenants that may call it) mix in PlatformRowsAdmin instead: someone bound to some tenants may
at most view those rows, and sees only their own tenants in them.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import Model, QuerySet

from askpro.models import Company

from .operators import rights_for

_UNKNOWN = object()


def allowed_tenants(request) -> frozenset[int] | None:
    """The pks of the companies the signed-in user may act for; None: every tenant."""
    return rights_for(request).tenant_ids


def tenant_path(model: type[Model]) -> str | None:
    """The lookup from `model` to its tenant's pk when it is unambiguous: "pk" for Company,
    else the name of the model's only ForeignKey (or one-to-one) to Company; None otherwise."""
    if issubclass(model, Company):
        return "pk"
    links = [
        f.name
        for f in model._meta.get_fields()
        if f.concrete and (f.many_to_one or f.one_to_one) and f.related_model is Company
    ]
    return links[0] if len(links) == 1 else None


class TenantChoicesFilter(admin.RelatedFieldListFilter):
    """A list filter on a relation to a tenant model that lists only the user's tenants' rows."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        allowed = allowed_tenants(request)
        if allowed is None:
            return field.get_choices(include_blank=False, ordering=ordering)
        scoped = model_admin.tenant_choices(request, field.related_model._default_manager.all(), allowed)
        return field.get_choices(
            include_blank=False, ordering=ordering, limit_choices_to={"pk__in": scoped.values("pk")}
        )


class TenantScopedAdmin:
    """Mixed into the ModelAdmin of a model that belongs to a tenant (listed before the
    ModelAdmin base): see the module docstring.

    `tenant_field` is the lookup from the model to its Company ("company", "tenant",
    "appointment__company", "tenant_id" for a plain integer column, "pk" for Company itself);
    left None, it is the model's only ForeignKey to Company. Override `scope_queryset` when
    belonging is not one lookup (a grant's list of tenants).
    """

    tenant_field: str | None = None

    # --- which rows -------------------------------------------------------------------------
    def tenant_lookup(self) -> str:
        path = self.tenant_field or tenant_path(self.model)
        if path is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__}: set tenant_field, {self.model._meta.label} has no single "
                "ForeignKey to Company"
            )
        return path

    def scope_queryset(self, request, queryset: QuerySet, tenant_ids: frozenset[int]) -> QuerySet:
        """`queryset` narrowed to the rows of `tenant_ids`."""
        return queryset.filter(**{f"{self.tenant_lookup()}__in": tenant_ids})

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        allowed = allowed_tenants(request)
        return queryset if allowed is None else self.scope_queryset(request, queryset, allowed)

    def in_scope(self, request, obj) -> bool:
        """True if the user may see `obj` (always, for someone who may see every tenant)."""
        allowed = allowed_tenants(request)
        if allowed is None or obj is None:
            return True
        tenant = self._tenant_of(obj)
        if tenant is _UNKNOWN:
            rows = self.model._default_manager.filter(pk=obj.pk)
            return self.scope_queryset(request, rows, allowed).exists()
        return tenant in allowed

    def _tenant_of(self, obj):
        # Read from the object itself (a column of the row on a change list: no query per row).
        *hops, last = self.tenant_lookup().split("__")
        value = obj
        for hop in hops:
            value = getattr(value, hop, None)
            if value is None:
                return None
        if last == "pk":
            return value.pk
        field = value._meta.get_field(last)
        if field.many_to_many or field.one_to_many:
            return _UNKNOWN
        return getattr(value, field.attname)

    # --- object-level permissions follow the queryset ---------------------------------------
    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.in_scope(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.in_scope(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.in_scope(request, obj)

    def has_add_permission(self, request, *args):
        allowed = allowed_tenants(request)
        if allowed is not None and (not allowed or self.tenant_lookup() == "pk"):
            # No tenant to put the row in; or a new tenant, which nobody bound to some may create.
            return False
        return super().has_add_permission(request, *args)

    # --- what forms and filters offer ---------------------------------------------------------
    def tenant_choices(self, request, queryset: QuerySet, tenant_ids: frozenset[int]) -> QuerySet | None:
        """`queryset` of another model narrowed to the rows of `tenant_ids`, or None if that
        model does not belong to a tenant."""
        model = queryset.model
        target_admin = self.admin_site._registry.get(model)
        if isinstance(target_admin, TenantScopedAdmin):
            return target_admin.scope_queryset(request, queryset, tenant_ids)
        path = tenant_path(model)
        return None if path is None else queryset.filter(**{f"{path}__in": tenant_ids})

    def _scoped_field_queryset(self, db_field, request, kwargs):
        allowed = allowed_tenants(request)
        if allowed is None or "queryset" in kwargs:
            return
        queryset = self.get_field_queryset(kwargs.get("using"), db_field, request)
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.using(kwargs.get("using"))
        scoped = self.tenant_choices(request, queryset, allowed)
        if scoped is not None:
            kwargs["queryset"] = scoped

    def _require_tenant(self, db_field, request, formfield):
        if (
            formfield is not None
            and allowed_tenants(request) is not None
            and db_field.name == self.tenant_lookup().split("__")[0]
        ):
            # A row without a tenant is a platform row (or, for a grant, one on every tenant):
            # not for someone bound to some tenants.
            formfield.required = True
        return formfield

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        self._scoped_field_queryset(db_field, request, kwargs)
        return self._require_tenant(
            db_field, request, super().formfield_for_foreignkey(db_field, request, **kwargs)
        )

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        self._scoped_field_queryset(db_field, request, kwargs)
        return self._require_tenant(
            db_field, request, super().formfield_for_manytomany(db_field, request, **kwargs)
        )

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        if allowed_tenants(request) is None:
            return filters
        return [self._scoped_filter(item) for item in filters]

    def _scoped_filter(self, item):
        if not isinstance(item, str):
            return item  # a filter of its own: it decides its choices
        try:
            field = get_fields_from_path(self.model, item)[-1]
        except (FieldDoesNotExist, ImproperlyConfigured):
            return item
        related = getattr(field, "related_model", None)
        if (
            field.is_relation
            and related is not None
            and (
                isinstance(self.admin_site._registry.get(related), TenantScopedAdmin) or tenant_path(related)
            )
        ):
            return (item, TenantChoicesFilter)
        return item

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        try:
            self.tenant_lookup()
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), obj=type(self), id="mcp.E010"))
        return errors


class PlatformRowsAdmin:
    """Mixed into the ModelAdmin of a platform-wide model (listed before the ModelAdmin base):
    its rows belong to no tenant, so changing one changes it for every tenant. Someone bound to
    some tenants may at most view them, whatever their model permissions say: no add, change or
    delete, hence none of the actions that need those. Views of its own that change state
    check `may_change_platform` (or the has_*_permission methods) as well."""

    @staticmethod
    def may_change_platform(request) -> bool:
        """False for someone bound to some tenants (or to none): platform rows are not theirs."""
        return allowed_tenants(request) is None

    def has_add_permission(self, request, *args):
        return self.may_change_platform(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return self.may_change_platform(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.may_change_platform(request) and super().has_delete_permission(request, obj)


class PlatformOnlyAdmin(PlatformRowsAdmin):
    """Mixed into the ModelAdmin of platform rows whose content may quote any tenant's data (an
    analyzer's stored error, a health check's detail): someone bound to some tenants does not
    see them at all, whatever their model permissions say."""

    def has_view_permission(self, request, obj=None):
        return self.may_change_platform(request) and super().has_view_permission(request, obj)

    def has_module_permission(self, request):
        return self.may_change_platform(request) and super().has_module_permission(request)
