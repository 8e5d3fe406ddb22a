"""The live feed's batching and states, the indicator, and where the panels run."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from notebench.client import Client
from notebench.sse import Event
from notebench.widgets.connection import GONE_HINT, ConnectionIndicator
from notebench.widgets.context import actions_allowed, in_voila, page_options
from notebench.widgets.i18n import Labels
from notebench.widgets.live import GONE, LIVE, RECONNECTING, LiveFeed


class Recorder:
    """A listener that records what the feed hands it."""

    def __init__(self, topics: set[str]) -> None:
        self.topics = topics
        self.batches: list[list[Event]] = []
        self.statuses: list[str] = []
        self.resyncs: list[bool] = []

    def feed_topics(self) -> set[str]:
        return self.topics

    def on_events(self, events: list[Event]) -> None:
        self.batches.append(events)

    def on_status(self, status: str, detail: dict[str, Any]) -> None:
        self.statuses.append(status)

    def on_resync(self, reset: bool) -> None:
        self.resyncs.append(reset)


def ev(topic: str, event_id: int | None = None, type_: str = "log") -> Event:
    return Event(event_id, type_, {"topic": topic, "data": {}}, topic)


@pytest.fixture
def feed() -> LiveFeed:
    # an address nothing listens on: these tests never open the stream
    return LiveFeed(Client("http://127.0.0.1:9/", token=""), redraw_hz=4)


def test_flush_hands_each_listener_its_topics_and_keeps_the_last_id(feed):
    jobs, logs = Recorder({"jobs"}), Recorder({"logs", "job:j-1"})
    feed.subscribe(jobs)
    feed.subscribe(logs)
    assert feed.wanted_topics() == {"jobs", "logs", "job:j-1"}
    for event in (ev("jobs", 4), ev("logs", 5), ev("job:j-1", 6), ev("monitoring")):
        feed._received(event)
    feed.flush()
    assert [e.id for e in jobs.batches[0]] == [4]
    assert [e.id for e in logs.batches[0]] == [5, 6]
    assert feed.last_event_id == 6
    feed.flush()
    assert len(jobs.batches) == 1  # nothing new: nothing handed


def test_reset_and_reconnection_ask_listeners_to_resync(feed):
    listener = Recorder({"jobs"})
    feed.subscribe(listener)
    feed._opened()
    feed._opened()  # a second connection: a resumption
    feed._received(Event(None, "reset", {"data": {}}, None))
    feed.flush()
    assert listener.statuses == [LIVE]
    assert listener.resyncs == [True]
    assert feed.connections == 2


def test_refused_connections_mean_the_server_went_away(feed):
    listener = Recorder({"jobs"})
    feed.subscribe(listener)
    feed._lost(1, "ConnectionRefusedError: [Errno 111] Connection refused", 1.0)
    assert feed.status == RECONNECTING
    feed._lost(2, "server closed the stream", 2.0)
    assert feed.status == RECONNECTING
    feed._lost(3, "ConnectionRefusedError: [Errno 111] Connection refused", 4.0)
    assert feed.status == GONE
    feed.flush()
    assert listener.statuses == [GONE]  # only the state at the time of the flush


def test_dispatch_batches_a_burst_into_a_few_redraws_a_second(feed):
    listener = Recorder({"logs"})
    feed.subscribe(listener)
    thread = threading.Thread(target=feed._dispatch, daemon=True)
    thread.start()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 1.0:
        feed._received(ev("logs", sent + 1))
        sent += 1
        time.sleep(0.002)
    time.sleep(feed.interval * 2)
    feed.stop()
    thread.join(5)
    received = sum(len(b) for b in listener.batches)
    assert received == sent
    # 1 s of events at 4 redraws/s: the first batch at once, then one per interval
    assert len(listener.batches) <= 7, len(listener.batches)


def test_topic_changes_reach_the_feed(feed):
    listener = Recorder({"jobs"})
    feed.subscribe(listener)
    listener.topics = {"jobs", "job:j-2"}
    feed.topics_changed()
    assert feed._topics == {"jobs", "job:j-2"}
    feed.unsubscribe(listener)
    assert feed._topics == frozenset()


def test_indicator_says_reconnecting_and_how_to_reload():
    indicator = ConnectionIndicator(Labels())
    indicator.set(RECONNECTING, {"attempt": 2, "error": "reset <by peer>"})
    assert 'data-status="reconnecting"' in indicator.widget.value
    assert "reconnecting (2)" in indicator.widget.value
    assert "reset &lt;by peer&gt;" in indicator.widget.value
    indicator.set(GONE, {})
    assert "reload this page" in indicator.widget.value and GONE_HINT[:20] in \
        indicator.widget.value.replace("&#x27;", "'")
    persian = ConnectionIndicator(Labels("fa"))
    persian.set(LIVE, {})
    assert "زنده" in persian.widget.value


def test_voila_pages_are_read_only_unless_the_server_allows_actions():
    assert not in_voila({}) and actions_allowed({})
    voila = {"VOILA_REQUEST_URL": "http://x/voila/render/a.ipynb"}
    assert in_voila(voila) and not actions_allowed(voila)
    assert not actions_allowed({**voila, "NOTEBENCH_VOILA_ACTIONS": "0"})
    assert actions_allowed({**voila, "NOTEBENCH_VOILA_ACTIONS": "1"})


def test_page_options_come_from_the_query_string():
    assert page_options({"QUERY_STRING": "direction=rtl&lang=fa"}) == {"direction": "rtl",
                                                                       "lang": "fa"}
    assert page_options({"QUERY_STRING": "dir=ltr&lang=<script>"}) == {"direction": "ltr"}
    assert page_options({"QUERY_STRING": "direction=sideways"}) == {}
    assert page_options({}) == {}
