"""The database server's read operations refuse what a tenant may not see, naming the field.
(Refused SQL, timeouts and byte caps of `query`: test_query_safety.py.)"""

from __future__ import annotations

from mcp_core.pipeline import call_operation


def test_it_refuses_another_tenants_branch(world, reader):
    bob_branch = world["bob"].branches.first()
    for name in ("get_phone_branch_mapping", "get_call_stats"):
        response = call_operation("database", name, {"branch_id": bob_branch.pk}, principal=reader)
        assert response.error["code"] == "not_found", response.error
        assert response.error["details"]["field"] == "branch_id"
