"""Alert rules on the real server, driven by the test source: states, ack, silence, rules."""

from __future__ import annotations

import pytest

from .conftest import INTERVAL, check_schema, read_until, wait_for

RULES_YAML = """
rules:
  - name: test_high
    metric: test_value
    comparison: ">"
    threshold: 5
    for: 1s
    severity: critical
    labels: {team: ml}
    message: "value {value:g} on {unit}"
  - name: test_keep
    metric: test_keep
    threshold: 0
    keep_firing_for: 1
  - name: test_avg
    metric: test_avg
    threshold: 10
    aggregation: avg
    window: 1s
  - name: memory_high          # replaces the built-in rule
    metric: memory_percent
    threshold: 99.5
    for: 5m
  - name: broken
    metric: test_value
    comparison: "=~"
    threshold: 1
"""


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML)
    return path


@pytest.fixture
def monitoring_config(rules_file):
    return {"interval": INTERVAL, "rules_file": str(rules_file),
            "disabled_rules": ["gpu_temperature_high"]}


async def test_pending_then_firing_after_for_then_resolved(api, source, alerts, stream,
                                                           monitoring):
    conn = await stream("alerts")
    await source("test_value", 10, unit="a")
    pending = await alerts.wait("test_high", "pending")
    assert pending["labels"] == {"unit": "a", "team": "ml"}
    assert pending["severity"] == "critical" and pending["threshold"] == 5
    firing = await alerts.wait("test_high", "firing")
    assert firing["id"] == pending["id"] and firing["episode"] == pending["episode"]
    # fired at the first evaluation at least `for` after it became pending (server times)
    held = firing["fired_at"] - firing["pending_at"]
    assert 1.0 - 1e-6 <= held <= 1.0 + 4 * INTERVAL, held
    assert firing["message"] == "value 10 on a"
    await source("test_value", 1, unit="a")
    resolved = await alerts.wait("test_high", "resolved")
    assert resolved["id"] == firing["id"] and resolved["resolved_at"] >= firing["fired_at"]
    body = await alerts()
    assert not [a for a in body["active"] if a["rule"] == "test_high"]
    # each change was an event on the stream, in order, with an id (replayable)
    frames = await read_until(conn, lambda fs: [f.data["data"]["state"] for f in fs
                                                if f.event == "alert"][-1:] == ["resolved"])
    states = [f.data["data"]["state"] for f in frames if f.event == "alert"
              and f.data["data"]["rule"] == "test_high"]
    assert states == ["pending", "firing", "resolved"]
    assert all(f.id is not None for f in frames)
    # and records in the store (a pending that never fired is not kept)
    rows = await monitoring.store.read(lambda c: c.execute(
        "SELECT state FROM monitoring_alerts WHERE rule = 'test_high'").fetchall())
    assert [r[0] for r in rows] == ["resolved"]


async def test_a_pending_alert_that_stops_is_dropped(source, alerts, stream):
    conn = await stream("alerts")
    await source("test_value", 10, unit="b")
    await alerts.wait("test_high", "pending")
    await source("test_value", 0, unit="b")
    frames = await read_until(conn, lambda fs: any(
        f.event == "alert" and f.data["data"]["state"] == "inactive" for f in fs))
    assert [f.data["data"]["state"] for f in frames if f.event == "alert"] == [
        "pending", "inactive"]
    assert await alerts.find("test_high") is None


async def test_keep_firing_for(source, alerts):
    await source("test_keep", 1)
    firing = await alerts.wait("test_keep", "firing")
    assert firing["fired_at"] == firing["pending_at"]  # for: 0 fires at once
    await source("test_keep", 0)
    resolved = await alerts.wait("test_keep", "resolved")
    kept = resolved["resolved_at"] - resolved["last_true_at"]
    assert 1.0 - 1e-6 <= kept <= 1.0 + 4 * INTERVAL, kept


async def test_aggregation_over_a_window(source, alerts, monitoring):
    await source("test_avg", 8)
    await wait_for(lambda: monitoring.latest_sample and len(monitoring.history.window(
        ("test_avg", ()), 1.0, monitoring.latest_sample["ts"])) >= 4)
    assert await alerts.find("test_avg") is None  # the average is 8
    await source("test_avg", 30)
    firing = await alerts.wait("test_avg", "firing")
    assert 10 < firing["value"] <= 30


async def test_acknowledge_and_silence(api, source, alerts, stream):
    await source("test_keep", 1, unit="x")
    firing = await alerts.wait("test_keep", "firing")
    alert_id = firing["id"]
    conn = await stream("alerts")

    ack = await api("POST", f"monitoring/alerts/{alert_id}/ack")
    assert ack.status == 200, ack.body
    assert ack.body["acknowledged"]["at"] >= firing["fired_at"]
    assert ack.body["state"] == "firing"
    listed = await alerts.find("test_keep", "firing")
    assert listed["acknowledged"] is not None

    silence = await api("POST", f"monitoring/alerts/{alert_id}/silence",
                        {"duration": "1h", "comment": "known"})
    assert silence.status == 200, silence.body
    assert 3590 < silence.body["until"] - silence.body["created"] <= 3600
    assert silence.body["alert"]["silenced_until"] == silence.body["until"]
    body = await alerts()
    assert [s["id"] for s in body["silences"]] == [alert_id]
    assert body["active"][0]["silenced_until"] == silence.body["until"]
    frames = await read_until(conn, lambda fs: any(f.event == "silence" for f in fs))
    assert any(f.event == "alert" and f.data["data"]["acknowledged"] for f in frames)

    lifted = await api("POST", f"monitoring/alerts/{alert_id}/silence", {"duration": 0})
    assert lifted.status == 200 and lifted.body["until"] is None
    assert (await alerts())["silences"] == []

    bad = await api("POST", f"monitoring/alerts/{alert_id}/silence", {"duration": "soon"})
    assert bad.status == 400 and bad.body["error"]["code"] == "invalid_duration"
    missing = await api("POST", "monitoring/alerts/0123456789abcdef/ack")
    assert missing.status == 404
    unknown = await api("POST", "monitoring/alerts/0123456789abcdef/silence", {"duration": 60})
    assert unknown.status == 404

    await source("test_keep", 0, unit="x")
    await alerts.wait("test_keep", "resolved")
    late = await api("POST", f"monitoring/alerts/{alert_id}/ack")
    assert late.status == 409 and late.body["error"]["code"] == "not_active"
    # a resolved identity can still be silenced (its next episode stays quiet)
    again = await api("POST", f"monitoring/alerts/{alert_id}/silence", {"duration": 30})
    assert again.status == 200 and again.body["alert"] is None


async def test_rules_listing(api, rules_file):
    response = await api("GET", "monitoring/alerts/rules")
    assert response.status == 200
    rules = {r["name"]: r for r in response.body["rules"]}
    for builtin in ("disk_free_low", "job_failed", "job_stalled", "job_loss_nonfinite"):
        assert rules[builtin]["source"] == "builtin"
    assert rules["gpu_temperature_high"]["enabled"] is False  # disabled_rules
    assert rules["memory_high"]["threshold"] == 99.5
    assert rules["memory_high"]["for"] == 300 and rules["memory_high"]["source"] == str(rules_file)
    assert rules["test_avg"]["aggregation"] == "avg" and rules["test_avg"]["window"] == 1
    assert "broken" not in rules
    assert any("broken" in p and "comparison" in p for p in response.body["problems"])
    assert response.body["rules_file"] == str(rules_file)


async def test_the_rules_file_is_reloaded_when_it_changes(api, rules_file, monitoring):
    rules_file.write_text("rules:\n  - {name: fresh, metric: test_value, threshold: 1}\n")
    await monitoring.reload_rules()  # what the housekeeping does when the file's mtime moves
    names = {r["name"] for r in (await api("GET", "monitoring/alerts/rules")).body["rules"]}
    assert "fresh" in names and "test_high" not in names
    rules_file.write_text("rules: [{name: x}]\n")
    await monitoring.reload_rules()
    body = (await api("GET", "monitoring/alerts/rules")).body
    assert any("'metric'" in p for p in body["problems"])


async def test_alerts_validate_and_filter(api, source, alerts):
    await source("test_keep", 1, unit="v")
    await alerts.wait("test_keep", "firing")
    body = await alerts(state="firing")
    assert body["active"] and all(a["state"] == "firing" for a in body["active"])
    assert body["recent"] == []
    for alert in body["active"]:
        check_schema("Alert", alert)
    bad = await api("GET", "monitoring/alerts", params={"state": "exploding"})
    assert bad.status == 400
