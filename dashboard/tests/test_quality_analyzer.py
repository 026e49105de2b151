import pytest
from django.test import override_settings
from django.utils import timezone

from dashboard.engine.analyzers.quality import UIAccessibility
from dashboard.engine.base import AnalysisContext
from mcp_core.models import AuditEntry


def ctx():
    return AnalysisContext(now=timezone.now())


@pytest.mark.django_db
def test_it_reports_accessibility_findings_per_rule_from_the_ui_audit_server(tmp_path, settings):
    # A template of ours with an unlabelled input, rendered by a page the analyzer audits.
    template_dir = tmp_path / "templates"
    (template_dir / "admin").mkdir(parents=True)
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [template_dir, *settings.TEMPLATES[0]["DIRS"]]}]
    (template_dir / "admin" / "index.html").write_text(
        '{% extends "admin/base_site.html" %}{% block content %}<input name="q">{% endblock %}'
    )
    with override_settings(IMPROVEMENT_THRESHOLDS={"ui_accessibility": {"pages": ["/admin/"]}}):
        findings = UIAccessibility().analyze(ctx())
    rules = {f.fingerprint: f for f in findings}
    assert "form-label" in rules
    assert rules["form-label"].severity == "medium"
    assert rules["form-label"].evidence["examples"][0]["page"] == "/admin/"
    assert "input[name=q]" in rules["form-label"].evidence["examples"][0]["element"]
    # The calls went through the orchestrator, audited like any other.
    assert AuditEntry.objects.filter(service="ui_audit", operation="audit_page", transport="engine").exists()


@pytest.mark.django_db
def test_it_finds_nothing_to_report_on_a_clean_page(tmp_path, settings):
    template_dir = tmp_path / "templates"
    (template_dir / "admin").mkdir(parents=True)
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [template_dir, *settings.TEMPLATES[0]["DIRS"]]}]
    (template_dir / "admin" / "index.html").write_text(
        '{% extends "admin/base_site.html" %}{% block content %}'
        '<label for="q">Search</label><input id="q" name="q">{% endblock %}'
    )
    with override_settings(IMPROVEMENT_THRESHOLDS={"ui_accessibility": {"pages": ["/admin/"]}}):
        findings = UIAccessibility().analyze(ctx())
    assert [f.fingerprint for f in findings if f.fingerprint in {"form-label", "img-alt", "html-lang"}] == []
