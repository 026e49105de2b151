from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import MCPRequest
from mcp_core.models import AuditEntry, MetricRollup
from mcp_core.pipeline import route


def test_it_routes_a_tenant_call_and_records_it_once(alice, alice_key):
    principal = api_key_authenticate(alice_key)
    response = route(
        MCPRequest(service="database", operation="get_tenant_stats", params={}, principal=principal)
    )
    assert response.success, response.error
    assert response.data["tenant"] == "alice-salon"
    assert AuditEntry.objects.filter(request_id=response.metadata["request_id"]).count() == 1
    assert MetricRollup.objects.get(service="database", operation="get_tenant_stats").calls == 1
