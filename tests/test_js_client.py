"""The main flows through the official JavaScript client (`@openmeter/sdk`, pinned in tests/js) against gunicorn.

bin/test installs the client with `npm ci`; a machine without Node.js fails here with a clear message."""

import datetime as dt
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from subscriptions.models import Subscription

JS_DIR = Path(__file__).resolve().parent / "js"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def run_flow(base_url: str, api_key: str, suffix: str) -> dict:
    node = shutil.which("node")
    assert node, "Node.js is needed for the JavaScript client tests (bin/test installs the client with npm ci)"
    assert (JS_DIR / "node_modules" / "@openmeter" / "sdk").is_dir(), "run `npm ci` in tests/js (bin/test does)"
    done = subprocess.run([node, "flow.mjs", base_url, api_key, suffix], cwd=JS_DIR, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_main_flows_through_the_javascript_client(live_server_url, api_key):
    suffix = uuid.uuid4().hex[:8]
    out = run_flow(live_server_url, api_key, suffix)

    # three events, one sent twice: 100 gpt-4 and 50 gpt-3 three hours ago, 25 gpt-4 two hours ago
    top = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    three_ago = (top - dt.timedelta(hours=3)).isoformat().replace("+00:00", ".000Z")
    two_ago = (top - dt.timedelta(hours=2)).isoformat().replace("+00:00", ".000Z")
    subject = f"js-user-{suffix}"
    assert sorted(out["query"], key=lambda r: (r["windowStart"], r["model"])) == [
        {"windowStart": three_ago, "model": "gpt-3", "subject": subject, "value": 50},
        {"windowStart": three_ago, "model": "gpt-4", "subject": subject, "value": 100},
        {"windowStart": two_ago, "model": "gpt-4", "subject": subject, "value": 25},
    ]
    assert out["eventIds"] == [f"{suffix}-1", f"{suffix}-2", f"{suffix}-3"]
    # the client surfaces our problem detail (it reads it only from an exact application/problem+json)
    assert out["badRequest"]["status"] == 400
    assert "slug" in out["badRequest"]["detail"]

    # usage since the entitlement's period start: 100 + 50 + 25 = 175 of the 1,000 granted
    assert out["value"] == {"hasAccess": True, "balance": 825, "usage": 175, "overage": 0}
    assert out["access"] == {f"js_tokens_{suffix}": True}

    assert out["planStatus"] == "active"
    assert out["subscriptionStatus"] == "active"
    assert out["subscriptionIds"] == [out["subscriptionId"]]
    assert Subscription.objects.get(pk=out["subscriptionId"]).customer.key == out["customerKey"]

    assert out["portalTotal"] == 175
    assert out["metricsHasCounter"] is True
