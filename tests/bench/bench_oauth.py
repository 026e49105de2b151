"""OAuth tokens against API keys (issue 17): what verifying an access token costs next to
verifying an API key, in process, and /mcp tools/call throughput with each, over HTTP.

The token is a real one: a client registers (RFC 7591), a staff operator with a grant on the
demo tenant signs in and consents, and the code is exchanged with PKCE. The key is a tenant key
of the same tenant and scope, so both principals take the same path through the pipeline.

    .venv/bin/python -m tests.bench.bench_oauth [--seconds 8] [--connections 16] [--iterations 2000]

gunicorn -w 2, DEBUG off, PostgreSQL and Redis, one machine, one run; side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import os

import requests

from tests.bench.bench_mcp import _per_call_ms, drive_mcp, lift_demo_rate_limit
from tests.bench.harness import bench_database, bench_env, gunicorn, have_wrk, run_manage
from tests.oauth import flow

PASSWORD = "bench-operator-password-1"
SETUP = """
import json
from django.contrib.auth import get_user_model
from askpro.models import Company
from mcp_core.api_keys import api_key_create
from mcp_core.models import OperatorAccess
tenant = Company.objects.get(slug="salon-sonnenschein")
user = get_user_model().objects.create_user("bench-operator", "b@example.com", "PASSWORD", is_staff=True)
grant = OperatorAccess.objects.create(name="bench", user=user, scopes=["*"])
grant.tenants.add(tenant)
key = api_key_create(name="bench", scopes=["*"], tenant=tenant)[1]
print(json.dumps({"key": key, "tenant": tenant.pk}))
""".replace("PASSWORD", PASSWORD)


def obtain_token(base: str, tenant: int) -> str:
    """The whole authorization-code flow over HTTP, with the operator's consent."""
    redirect = "http://127.0.0.1:9/bench-callback"
    client_id = requests.post(f"{base}/oauth/register/", json=flow.registration(redirect), timeout=30).json()[
        "client_id"
    ]
    verifier, challenge = flow.pkce()
    browser = requests.Session()
    login = browser.get(f"{base}/admin/login/", timeout=30)
    csrf = browser.cookies["csrftoken"]
    assert login.status_code == 200
    browser.post(
        f"{base}/admin/login/",
        data={
            "csrfmiddlewaretoken": csrf,
            "username": "bench-operator",
            "password": PASSWORD,
            "next": "/admin/",
        },
        allow_redirects=False,
        timeout=30,
    )
    params = flow.authorize_params(client_id, redirect, challenge, resource=f"{base}/mcp")
    page = browser.get(f"{base}/oauth/authorize/", params=params, timeout=30)
    hidden, _, _ = flow.consent_form(page.text)
    answer = browser.post(
        page.url,
        data=flow.consent_post(hidden, tenant=str(tenant), granted=["*"]),
        allow_redirects=False,
        timeout=30,
    )
    code = flow.redirect_query(answer.headers["Location"])["code"]
    tokens = requests.post(
        f"{base}/oauth/token/",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": f"{base}/mcp",
        },
        timeout=30,
    ).json()
    return tokens["access_token"]


def verification_costs(database_url: str, key: str, token: str, resource: str, iterations: int):
    """Per call, in this process (ms): the uncached lookups and the per-process cached ones."""
    os.environ.update(bench_env(database_url, MCP_AUTH_CACHE_SECONDS="3600"))
    import django

    django.setup()
    from django.db import connections

    from mcp_core.api_keys import api_key_authenticate, api_key_authenticate_cached
    from mcp_core.oauth.tokens import (
        access_token_authenticate,
        access_token_authenticate_cached,
        verify_signature,
    )

    assert api_key_authenticate(key) is not None and access_token_authenticate(token, resource) is not None
    rows = [
        (
            "lookup, every call",
            lambda: api_key_authenticate(key),
            lambda: access_token_authenticate(token, resource),
        ),
        (
            "cached per process (MCP_AUTH_CACHE_SECONDS)",
            lambda: api_key_authenticate_cached(key),
            lambda: access_token_authenticate_cached(token, resource),
        ),
    ]
    results = [(name, _per_call_ms(k, iterations), _per_call_ms(t, iterations)) for name, k, t in rows]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    signature_only = _per_call_ms(lambda: verify_signature(forged, resource), iterations)
    connections.close_all()
    return results, signature_only


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    tool = "wrk" if have_wrk() else "python keep-alive load"
    with bench_database() as database_url:
        run_manage(["seed_demo"], database_url=database_url)
        lift_demo_rate_limit(database_url)
        made = json.loads(
            run_manage(["shell", "-c", SETUP], database_url=database_url).strip().splitlines()[-1]
        )
        throughput = []
        for cache in ("2", "0"):
            with gunicorn(database_url, workers=2, MCP_AUTH_CACHE_SECONDS=cache) as base:
                token = obtain_token(base, made["tenant"])
                resource = f"{base}/mcp"
                pair = []
                for label, credential in (("API key", made["key"]), ("OAuth token", token)):
                    auth = {"Authorization": f"Bearer {credential}"}
                    pair.append(
                        (
                            label,
                            drive_mcp(base, "echo_echo", {"text": "hi"}, modern=False, auth=auth, args=args),
                        )
                    )
                throughput.append((cache, pair))
        costs, signature_only = verification_costs(
            database_url, made["key"], token, resource, args.iterations
        )

    print(f"\n== Verifying a credential, in process, {args.iterations} iterations (ms per call) ==")
    print(f"{'':46} {'API key':>9} {'OAuth':>9} {'OAuth/key':>10}")
    for name, key_ms, token_ms in costs:
        print(f"{name:46} {key_ms:9.3f} {token_ms:9.3f} {token_ms / key_ms:9.2f}x")
    print(f"{'a forged token, refused by its signature':46} {'':9} {signature_only:9.3f}")
    print(
        f"\n== /mcp tools/call echo_echo: gunicorn -w 2, DEBUG off, {args.seconds}s each, "
        f"{tool} -c{args.connections} =="
    )
    print(f"{'':30} {'credential':12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs key':>7}")
    for cache, pair in throughput:
        key_rps = pair[0][1]["rps"]
        for label, result in pair:
            print(
                f"{'MCP_AUTH_CACHE_SECONDS=' + cache:30} {label:12} {result['rps']:8.0f} {result['p50_ms']:8.2f} "
                f"{result['p99_ms']:8.2f} {result['errors']:7.0f} {result['rps'] / key_rps:6.2f}x"
            )


if __name__ == "__main__":
    main()
