"""The one credential rule every upstream server uses (mcp_core.tenancy)."""

import pytest

from askpro.models import Company
from mcp_core.contracts import ErrorCode, MCPError
from mcp_core.tenancy import PLATFORM, TENANT, TenantCredentials

pytestmark = pytest.mark.django_db

RULE = TenantCredentials(
    service="calcom", tenant_field="calcom_api_key", platform_setting="CALCOM_API_KEY", what="Cal.com API key"
)


def company(slug: str, key: str = "", active: bool = True) -> Company:
    return Company.objects.create(name=slug, slug=slug, calcom_api_key=key, is_active=active)


def test_it_prefers_the_tenants_own_credential(settings):
    settings.CALCOM_API_KEY = "cal_platform"
    found = RULE.resolve(company("acme", "cal_acme_own"))
    assert (found.secret, found.source) == ("cal_acme_own", TENANT)


def test_it_falls_back_to_the_platform_credential(settings):
    settings.CALCOM_API_KEY = "cal_platform"
    assert RULE.resolve(company("acme")).source == PLATFORM
    assert RULE.resolve(None).secret == "cal_platform"


def test_it_is_not_configured_without_either_and_names_what_is_missing(settings):
    settings.CALCOM_API_KEY = None
    with pytest.raises(MCPError) as caught:
        RULE.resolve(company("acme"))
    assert caught.value.code == ErrorCode.NOT_CONFIGURED
    assert "CALCOM_API_KEY" in caught.value.message and "Cal.com API key" in caught.value.message
    assert RULE.find(None) is None


def test_it_never_shows_the_secret_in_its_repr(settings):
    settings.CALCOM_API_KEY = "cal_platform_secret"
    assert "cal_platform_secret" not in repr(RULE.resolve(None))


def test_it_counts_only_active_tenants_own_credentials_as_configured(settings):
    settings.CALCOM_API_KEY = ""
    company("sleepy", "cal_sleepy", active=False)
    company("plain")
    assert RULE.is_configured() is False
    assert RULE.health_credentials() == []
    company("acme", "cal_acme")
    assert RULE.is_configured() is True
    settings.CALCOM_API_KEY = "cal_platform"
    Company.objects.filter(slug="acme").update(calcom_api_key="")
    assert RULE.is_configured() is True


def test_it_checks_the_platform_and_a_few_distinct_tenant_credentials_for_health(settings):
    settings.CALCOM_API_KEY = "cal_platform"
    company("a", "cal_platform")  # the same key as the platform's: checked once
    company("b", "cal_b")
    company("c", "cal_b")  # the same key as b's: checked once
    company("d", "cal_d")
    company("e", "cal_e")
    company("f", "cal_f")
    found = RULE.health_credentials(tenants=3)
    assert [(c.source, c.secret) for c in found] == [
        (PLATFORM, "cal_platform"),
        (TENANT, "cal_b"),
        (TENANT, "cal_d"),
        (TENANT, "cal_e"),
    ]
    assert [c.label for c in found][:2] == ["platform key", "tenant b"]


def test_it_follows_a_one_to_one_field_path_and_has_no_platform_fallback_when_none_is_named():
    from mcp_servers.messaging.models import MessagingAccount

    rule = TenantCredentials(
        service="messaging",
        tenant_field="messaging_account__auth_token",
        platform_setting="",
        what="Twilio auth token",
    )
    bare = company("bare")
    assert rule.find(bare) is None  # no related row at all
    with pytest.raises(MCPError) as caught:
        rule.resolve(bare)
    assert caught.value.code == ErrorCode.NOT_CONFIGURED
    assert "Twilio auth token" in caught.value.message and "platform" not in caught.value.message
    assert rule.is_configured() is False
    own = company("acme")
    MessagingAccount.objects.create(company=own, auth_token="twilio_acme_token")
    own.refresh_from_db()
    found = rule.resolve(own)
    assert (found.secret, found.source) == ("twilio_acme_token", TENANT)
    assert rule.is_configured() is True
    assert [c.secret for c in rule.health_credentials()] == ["twilio_acme_token"]
