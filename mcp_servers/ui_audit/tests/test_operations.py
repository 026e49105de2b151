"""The UI audit server's operations on the rendered admin pages and the project's stylesheets."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

from .conftest import call


@pytest.mark.django_db
def test_it_lists_the_admin_index_and_model_pages():
    pages = call("list_pages").data["pages"]
    assert "/admin/" in pages
    assert "/admin/askpro/call/" in pages


@pytest.mark.django_db
def test_it_audits_a_rendered_admin_page_without_writing_a_session(alice):
    sessions = Session.objects.count()
    response = call("audit_page", path="/admin/askpro/call/")
    assert response.success, response.error
    assert response.data["status"] == 200
    for finding in response.data["findings"]:
        assert finding["rule"] and finding["element"] and finding["message"]
    assert Session.objects.count() == sessions


@pytest.mark.django_db
def test_it_audits_every_page_and_counts_findings_per_rule(alice):
    response = call("audit_all")
    assert response.success, response.error
    data = response.data
    assert data["pages_audited"] >= 10
    assert sum(data["findings_by_rule"].values()) >= len(data["findings"])


@pytest.mark.django_db
def test_it_checks_the_contrast_of_the_projects_own_styles():
    response = call("check_contrast", minimum_ratio=4.5)
    assert response.success
    assert all(f["rule"] == "colour-contrast" for f in response.data["findings"])
