"""The ui_audit server: accessibility and usability checks of the project's own admin pages."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal

import msgspec
from django.db import transaction

from mcp_core.contracts import ErrorCode, MCPError, OperationContext
from mcp_core.health import HealthResult, HealthStatus
from mcp_core.schemas import NoParams, Params, Result
from mcp_core.server import MCPServer, operation

from .rendering import audit_user, auditable_pages, project_stylesheets, render_page
from .rules import Finding, audit_css, audit_html

Meta = msgspec.Meta
RULES = (
    "html-lang",
    "page-title",
    "heading-h1",
    "heading-order",
    "img-alt",
    "form-label",
    "table-headers",
    "table-header-empty",
    "control-name",
    "focusable-control",
    "tabindex-positive",
    "tabindex-invalid",
    "colour-contrast",
)


class FindingOut(Result):
    rule: str
    severity: Literal["error", "warning"]
    page: str
    element: str
    message: str


def _out(finding: Finding) -> FindingOut:
    return FindingOut(
        rule=finding.rule,
        severity=finding.severity,
        page=finding.page,
        element=finding.element,
        message=finding.message,
    )


class PageList(Result):
    pages: list[str]


class AuditPageParams(Params):
    path: Annotated[
        str,
        Meta(
            pattern=r"^/admin/[-\w/]*$", max_length=200, description="An admin page, e.g. /admin/dashboard/"
        ),
    ]


class PageAudit(Result):
    path: str
    status: int
    findings: list[FindingOut]


class AuditAllParams(Params):
    severity: Literal["error", "warning"] | None = None
    max_findings: Annotated[int, Meta(ge=1, le=2000)] = 500


class AuditSummary(Result):
    pages_audited: int
    pages_skipped: list[str]
    findings_by_rule: dict[str, int]
    findings: list[FindingOut]
    truncated: bool


class ContrastParams(Params):
    minimum_ratio: Annotated[
        float, Meta(ge=1.0, le=21.0, description="4.5 for body text (AA), 3 for large text")
    ] = 4.5


class ContrastResult(Result):
    sources_checked: list[str]
    findings: list[FindingOut]


class UIAuditServer(MCPServer):
    """Audits the admin pages as rendered HTML and the project's own stylesheets."""

    name = "ui_audit"
    description = (
        "UI/UX audit of the control plane's own admin pages: labels, alt text, headings, contrast, focus."
    )

    def _audit(self, path: str, ctx: OperationContext) -> tuple[int, list[Finding]]:
        try:
            # Each page renders in its own savepoint, rolled back afterwards: a page whose
            # query fails cannot poison the transaction for the pages after it.
            with transaction.atomic():
                savepoint = transaction.savepoint()
                try:
                    page = render_page(path, user=audit_user(ctx.principal.user_id))
                finally:
                    transaction.savepoint_rollback(savepoint)
        except Exception as exc:
            # A page that cannot render is itself a finding, not a reason to stop the audit.
            return 500, [
                Finding(
                    rule="render-error",
                    severity="error",
                    page=path,
                    element="page",
                    message=f"The page failed to render: {type(exc).__name__}",
                )
            ]
        if page.status != 200 or "html" not in page.content_type:
            return page.status, []
        return page.status, audit_html(page.html, page=path)

    @operation(
        description="List the admin pages the audit can check (index, dashboard pages, model lists).",
        params=NoParams,
        result=PageList,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
    )
    def list_pages(self, ctx: OperationContext, params: NoParams) -> PageList:
        return PageList(pages=auditable_pages())

    @operation(
        description="""Audit one admin page as rendered HTML: page title and language, heading order,
        image alt text, form labels, table headers, accessible names and keyboard focusability.
        Each finding names the rule, the element and what to change.""",
        params=AuditPageParams,
        result=PageAudit,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        timeout=30,
    )
    def audit_page(self, ctx: OperationContext, params: AuditPageParams) -> PageAudit:
        if params.path not in auditable_pages():
            raise MCPError(
                ErrorCode.NOT_FOUND,
                f"path: {params.path!r} is not an auditable admin page (see list_pages)",
                details={"field": "path"},
            )
        status, findings = self._audit(params.path, ctx)
        return PageAudit(path=params.path, status=status, findings=[_out(f) for f in findings])

    @operation(
        description="""Audit every admin page and the project's stylesheets; findings counted per rule.
        Use it for an overview, then audit_page for one page's details.""",
        params=AuditAllParams,
        result=AuditSummary,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
        timeout=60,
    )
    def audit_all(self, ctx: OperationContext, params: AuditAllParams) -> AuditSummary:
        findings: list[Finding] = []
        audited, skipped = 0, []
        for path in auditable_pages():
            if ctx.remaining() <= 1:
                skipped.append(path)
                continue
            status, page_findings = self._audit(path, ctx)
            if status == 200:
                audited += 1
            else:
                skipped.append(path)
            findings += page_findings
        for source, css in project_stylesheets():
            findings += audit_css(css, source=source)
        if params.severity:
            findings = [f for f in findings if f.severity == params.severity]
        counts = Counter(f.rule for f in findings)
        return AuditSummary(
            pages_audited=audited,
            pages_skipped=skipped,
            findings_by_rule=dict(sorted(counts.items())),
            findings=[_out(f) for f in findings[: params.max_findings]],
            truncated=len(findings) > params.max_findings,
        )

    @operation(
        description="Check the colour contrast of the project's own CSS (rules that set both colour and background).",
        params=ContrastParams,
        result=ContrastResult,
        scope="read",
        tenant_scoped=False,
        platform_only=True,
        read_only=True,
    )
    def check_contrast(self, ctx: OperationContext, params: ContrastParams) -> ContrastResult:
        sources = project_stylesheets()
        findings = []
        for source, css in sources:
            findings += audit_css(css, source=source, minimum=params.minimum_ratio)
        return ContrastResult(sources_checked=[s for s, _ in sources], findings=[_out(f) for f in findings])

    def health(self) -> HealthResult:
        pages = auditable_pages()
        return HealthResult(HealthStatus.HEALTHY, f"{len(pages)} admin pages auditable, {len(RULES)} rules")
