"""Analyzers over the product's own quality: accessibility of the admin pages we wrote.

They ask the ui_audit server through the orchestrator (audited like any call), so the
dashboard never imports a server module.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mcp_core.contracts import SYSTEM_PRINCIPAL
from mcp_core.pipeline import call_operation
from mcp_core.registry import get_registry

from ..base import AnalysisContext, Analyzer, Finding, severity_at_least

ACTIONS = {
    "html-lang": 'Set <html lang="…"> in the base template.',
    "page-title": "Give the page a descriptive <title> block.",
    "heading-h1": "Start the page with one <h1> naming it.",
    "heading-order": "Use heading levels in order (h1, h2, h3) without skipping.",
    "img-alt": 'Add alt text to the image (alt="" if it is decorative).',
    "form-label": "Add a <label for=…> (or aria-label) to the form control.",
    "table-headers": "Mark the table's header cells with <th scope=…>.",
    "table-header-empty": "Give the empty header cell text or an aria-label.",
    "control-name": "Give the link or button visible text or an aria-label.",
    "focusable-control": 'Use a <button> (or add tabindex="0" and a role) for the clickable element.',
    "tabindex-positive": "Use tabindex 0 or -1 so the focus order follows the page.",
    "tabindex-invalid": "Use a numeric tabindex.",
    "colour-contrast": "Darken the text or lighten the background to reach 4.5:1.",
    "render-error": "Fix the page so it renders; the audit could not check it.",
}


class UIAccessibility(Analyzer):
    name = "ui_accessibility"
    description = (
        "WCAG checks of our own admin pages and stylesheets (the ui_audit server), one finding per rule."
    )
    defaults = {
        "pages": [
            "/admin/",
            "/admin/dashboard/",
            "/admin/monitoring/",
            "/admin/improvements/",
            "/admin/console/",
        ],
        "examples": 5,
    }

    def unavailable(self) -> str | None:
        return None if get_registry().get_server("ui_audit") else "the ui_audit server is not registered"

    def _call(self, operation: str, params: dict[str, Any]) -> Any:
        response = call_operation(
            "ui_audit", operation, params, principal=SYSTEM_PRINCIPAL, transport="engine"
        )
        if not response.success:
            raise RuntimeError(f"ui_audit.{operation}: {response.error['code']}: {response.error['message']}")
        return response.data

    def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        raw: list[dict[str, Any]] = []
        audited = []
        for path in self.option("pages"):
            data = self._call("audit_page", {"path": path}) if path else None
            if data is not None:
                audited.append(path)
                raw += data["findings"]
        raw += self._call("check_contrast", {})["findings"]
        by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for finding in raw:
            by_rule[finding["rule"]].append(finding)
        findings = []
        for rule, items in sorted(by_rule.items()):
            errors = sum(1 for item in items if item["severity"] == "error")
            severity = severity_at_least(errors, [(1, "medium"), (10, "high")]) if errors else "low"
            pages = sorted({item["page"] for item in items})
            findings.append(
                Finding(
                    fingerprint=rule,
                    severity=severity,
                    title=f"Accessibility: {len(items)} × {rule} on {len(pages)} page(s)",
                    evidence={
                        "at": ctx.now.isoformat(),
                        "rule": rule,
                        "count": len(items),
                        "errors": errors,
                        "pages": pages,
                        "pages_audited": audited,
                        "examples": [
                            {"page": item["page"], "element": item["element"], "message": item["message"]}
                            for item in items[: self.option("examples")]
                        ],
                    },
                    suggested_action=ACTIONS.get(rule, "See the rule's message in the evidence."),
                )
            )
        return findings
