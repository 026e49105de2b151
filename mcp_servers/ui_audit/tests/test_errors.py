"""The UI audit server refuses paths it cannot audit, naming the field."""

from __future__ import annotations

import pytest

from .conftest import call


@pytest.mark.django_db
def test_it_refuses_paths_outside_the_admin():
    assert call("audit_page", path="/api/v1/mcp/services").error["details"]["field"] == "path"
    assert call("audit_page", path="/admin/no-such-page/").error["code"] == "not_found"
