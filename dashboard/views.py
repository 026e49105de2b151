"""The dashboard pages. Thin: they call selectors and services and render."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from mcp_core import live
from mcp_core.discovery import operation_allowed
from mcp_core.operators import CONSOLE_PERMISSION, rights_for
from mcp_core.registry import get_registry

from . import analytics_page, selectors, services
from .engine import improvements_run
from .engine.registry import get_analyzers
from .forms import ConsoleForm
from .models import ImprovementRun, Recommendation

# What each page action needs besides a staff login (granted in the admin: users and groups).
RUN_CHECKS_PERMISSION = "dashboard.run_health_checks"
RUN_IMPROVEMENTS_PERMISSION = "dashboard.run_improvements"
RECOMMENDATION_PERMISSION = "dashboard.change_recommendation"


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _tenant_ids(request: HttpRequest) -> frozenset[int] | None:
    """The tenants whose figures the signed-in operator may see; None: every tenant. Someone
    bound to some tenants (or a staff user with no grant: to none) sees on every page only
    their tenants' calls, failures, refusals, messages and recommendations (selectors)."""
    return rights_for(request).tenant_ids


def _context(site, request: HttpRequest, title: str, **extra) -> dict:
    return {**site.each_context(request), "title": title, "dashboard_pages": _pages(request), **extra}


def _live(request: HttpRequest) -> dict:
    """What a page's live.js needs: where the stream is, the newest event the page has seen, and
    whether to try the stream at all (without the permission or Redis the page just polls)."""
    url = settings.LIVE_STREAM_URL
    return {
        "url": url,
        "enabled": live.enabled() and request.user.has_perm(live.LIVE_PERMISSION),
        "last_id": live.current_id(),
        "cross_origin": url.startswith(("http://", "https://")),
        "poll_ms": int(settings.DASHBOARD_POLL_SECONDS * 1000),
    }


def _pages(request: HttpRequest) -> list[tuple[str, str]]:
    pages = [
        (reverse("admin:dashboard"), "MCP dashboard"),
        (reverse("admin:monitoring"), "System monitoring"),
        (reverse("admin:improvements"), "System improvements"),
        (reverse("admin:analytics"), "Analytics"),
    ]
    if request.user.has_perm(CONSOLE_PERMISSION):
        pages.append((reverse("admin:console"), "Console"))
    return pages


def dashboard_view(site, request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        _require(request, RUN_CHECKS_PERMISSION)
        snapshot = services.health_checks_run()
        if snapshot.source == "live":
            messages.success(request, f"Checked {len(snapshot.services)} server(s) just now.")
        elif snapshot.run_in_progress:
            messages.info(request, "A check is already running; these are the last stored results.")
        else:
            messages.info(request, f"Showing the check from {snapshot.age_seconds:.0f} s ago (reused).")
        return redirect("admin:dashboard")
    overview = selectors.dashboard_overview(tenant_ids=_tenant_ids(request))
    return TemplateResponse(
        request,
        "admin/dashboard/dashboard.html",
        _context(
            site,
            request,
            "MCP dashboard",
            can_run_checks=request.user.has_perm(RUN_CHECKS_PERMISSION),
            live=_live(request),
            live_url=reverse("admin:dashboard_live"),
            **overview,
        ),
    )


def dashboard_live_view(site, request: HttpRequest) -> HttpResponse:
    """The dashboard's changing part (aggregate and cards) alone, which the page fetches when
    an event arrives or, without the stream, on its poll."""
    return TemplateResponse(
        request,
        "admin/dashboard/_dashboard_live.html",
        {"request": request, **selectors.dashboard_overview(tenant_ids=_tenant_ids(request))},
    )


def monitoring_view(site, request: HttpRequest) -> HttpResponse:
    window = request.GET.get("window", "1h")
    if window not in selectors.WINDOWS:
        window = "1h"
    data = selectors.monitoring_data(window, tenant_ids=_tenant_ids(request))
    return TemplateResponse(
        request,
        "admin/dashboard/monitoring.html",
        _context(
            site,
            request,
            "System monitoring",
            data=data,
            windows=list(selectors.WINDOWS),
            window=window,
            data_url=reverse("admin:monitoring_data"),
            live=_live(request),
        ),
    )


def monitoring_data_view(site, request: HttpRequest) -> HttpResponse:
    window = request.GET.get("window", "1h")
    if window not in selectors.WINDOWS:
        return JsonResponse(
            {
                "error": {
                    "field": "window",
                    "message": f"window: expected one of {', '.join(selectors.WINDOWS)}",
                }
            },
            status=400,
        )
    return JsonResponse(selectors.monitoring_data(window, tenant_ids=_tenant_ids(request)))


def _may_run_improvements(request: HttpRequest) -> bool:
    # A run analyses every tenant and reports its findings and errors across them: a platform
    # action, not for someone bound to some tenants.
    return request.user.has_perm(RUN_IMPROVEMENTS_PERMISSION) and _tenant_ids(request) is None


def improvements_view(site, request: HttpRequest) -> HttpResponse:
    tenant_ids = _tenant_ids(request)
    if request.method == "POST":
        if not _may_run_improvements(request):
            raise PermissionDenied
        run = improvements_run(trigger=ImprovementRun.Trigger.PAGE)
        level = messages.WARNING if run.errors else messages.SUCCESS
        messages.add_message(
            request,
            level,
            f"Analysis finished in {run.duration_ms:.0f} ms: {run.findings} finding(s), {run.created} new, "
            f"{len(run.errors)} analyzer error(s).",
        )
        return redirect("admin:improvements")
    status = request.GET.get("status", "active")
    if status not in {"active", "all", *Recommendation.Status.values}:
        status = "active"
    analyzers = get_analyzers()
    return TemplateResponse(
        request,
        "admin/dashboard/improvements.html",
        _context(
            site,
            request,
            "System improvements",
            recommendations=selectors.recommendations_list(
                None if status == "all" else status, tenant_ids=tenant_ids
            ),
            counts=selectors.recommendation_counts(tenant_ids=tenant_ids),
            # The run history counts findings and errors of every tenant.
            show_runs=tenant_ids is None,
            runs=selectors.runs_list() if tenant_ids is None else [],
            status=status,
            statuses=["active", *Recommendation.Status.values, "all"],
            analyzers=analyzers,
            can_run_improvements=_may_run_improvements(request),
            can_act=request.user.has_perm(RECOMMENDATION_PERMISSION),
        ),
    )


def improvement_action_view(site, request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _require(request, RECOMMENDATION_PERMISSION)
    tenant_ids = _tenant_ids(request)
    if tenant_ids is not None and not selectors.visible_recommendations(tenant_ids).filter(pk=pk).exists():
        # Not theirs (or a platform finding): unknown to them, like an object of another tenant.
        raise Http404("no such recommendation")
    try:
        rec = services.recommendation_set_status(rec_id=pk, action=action, user=request.user)
    except services.ActionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Recommendation “{rec.title[:80]}” is now {rec.status}.")
    target = request.POST.get("next", "")
    # Only back to our own page, never to an address someone put in the form.
    if not target.startswith(reverse("admin:improvements")):
        target = reverse("admin:improvements")
    return redirect(target)


def console_view(site, request: HttpRequest) -> HttpResponse:
    # The console calls operations with the operator's own rights (mcp_core.operators).
    _require(request, CONSOLE_PERMISSION)
    registry = get_registry()
    rights = rights_for(request)
    reach = rights.reach()
    # Listed: what some grant of the operator covers. Anything else can still be opened by
    # name; the pipeline then refuses it (and audits the refusal).
    ops = [o for o in registry.operations() if operation_allowed(o, reach)]
    selected = request.GET.get("op") or request.POST.get("op") or ""
    service, _, name = selected.partition(".")
    op = registry.get_operation(service, name) if selected else None
    form = response = None
    response_ok = False
    if op is not None:
        form = ConsoleForm(
            request.POST or None,
            op=op,
            tenants=rights.tenants(),
            tenant_bound=rights.tenant_bound,
        )
        if request.method == "POST" and form.is_valid():
            try:
                params = form.params()
            except forms.ValidationError as exc:
                form.add_error(None, exc)
            else:
                result = services.console_call(
                    rights=rights,
                    service=op.service,
                    operation=op.name,
                    params=params,
                    tenant=form.cleaned_data.get("tenant"),
                )
                response = json.dumps(result.to_dict(), indent=2, default=str)
                response_ok = result.success
                form.add_call_error(result.error)
    return TemplateResponse(
        request,
        "admin/dashboard/console.html",
        _context(
            site,
            request,
            "Console",
            operations=ops,
            selected=selected,
            op=op,
            form=form,
            response=response,
            response_ok=response_ok,
            unknown=bool(selected) and op is None,
            rights=rights.summary(),
        ),
    )


def _analytics_params(request: HttpRequest) -> tuple[str, dict]:
    """The tenant and the period picker's params as given; the pipeline validates them."""
    params: dict = {key: request.GET[key] for key in ("date_from", "date_to") if request.GET.get(key)}
    branch = request.GET.get("branch_id", "")
    if branch:
        params["branch_id"] = int(branch) if branch.isdecimal() and len(branch) < 19 else branch
    return request.GET.get("tenant", ""), params


def analytics_view(site, request: HttpRequest) -> HttpResponse:
    rights = rights_for(request)
    tenants = selectors.analytics_tenants(rights)
    tenant, params = _analytics_params(request)
    tenant = tenant or (tenants[0]["slug"] if tenants else "")
    answers = services.analytics_report(rights=rights, tenant=tenant, params=params) if tenant else {}
    failed = next((answer for answer in answers.values() if not answer.success), None)
    page = (
        analytics_page.page_context({name: answer.data for name, answer in answers.items()})
        if answers and failed is None
        else {}
    )
    return TemplateResponse(
        request,
        "admin/dashboard/analytics.html",
        _context(
            site,
            request,
            "Analytics",
            tenants=tenants,
            tenant=tenant,
            branches=selectors.analytics_branches(rights, tenant),
            params=params,
            picker={
                key: params.get(key) or page.get("period", {}).get(key, "")
                for key in ("date_from", "date_to")
            },
            presets=analytics_page.presets(timezone.localdate()),
            error=failed.error if failed is not None else None,
            reports=["daily", "calls", "utilisation", "revenue"],
            **page,
        ),
        status=400 if failed is not None and failed.error["code"] == "validation_error" else 200,
    )


def analytics_export_view(site, request: HttpRequest) -> HttpResponse:
    tenant, params = _analytics_params(request)
    params["report"] = request.GET.get("report", "")
    answer = services.analytics_export(rights=rights_for(request), tenant=tenant, params=params)
    if not answer.success:
        return JsonResponse(
            {"error": answer.error}, status=400 if answer.error["code"] == "validation_error" else 403
        )
    response = HttpResponse(answer.data["csv"], content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{answer.data["filename"]}"'
    return response
