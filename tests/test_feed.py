"""cs457p2p.core.feed: the dashboard's event feed, a bounded ring buffer of events said
in words, where repeats are counted rather than added."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.feed import (
    COALESCE,
    Feed,
    finished_words,
    registered_words,
    ring_words,
    seconds_words,
)
from cs457p2p.core.ring import RingEvent


def test_entries_are_kept_oldest_first_with_growing_ids() -> None:
    feed = Feed(3)
    for k in range(5):
        feed.add(float(k), "register", f"127.0.0.{k}", f"registered {k}")
    assert [e.who for e in feed.entries] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert [e.id for e in feed.entries] == [3, 4, 5]
    assert feed.to_json()[-1] == {
        "id": 5,
        "time": 4.0,
        "kind": "register",
        "who": "127.0.0.4",
        "text": "registered 4",
        "count": 1,
    }


def test_a_repeat_is_counted_moved_to_the_newest_place_and_not_said_again() -> None:
    feed = Feed()
    asked: list[str] = []

    def words() -> str:
        asked.append("asked")
        return "sent the text 'hello', not a pickle"

    feed.add(1.0, "refused", "127.0.0.9", words, "got b'hello'")
    feed.add(2.0, "register", "127.0.0.2", "registered")
    for t in range(3, 1003):
        feed.add(float(t), "refused", "127.0.0.9", words, "got b'hello'")
    assert asked == ["asked"]  # the words of a repeat are not made again
    assert len(feed) == 2
    first, last = feed.entries
    assert (first.kind, last.kind, last.count, last.time) == ("register", "refused", 1001, 1002.0)
    assert last.id == feed.last_id == 1002
    # Other reasons, or another client, are other entries.
    feed.add(1003.0, "refused", "127.0.0.9", "other words", "got b'bye'")
    feed.add(1004.0, "refused", "127.0.0.8", words, "got b'hello'")
    assert len(feed) == 4


def test_a_repeat_said_anew_takes_the_new_words() -> None:
    feed = Feed()
    feed.add(1.0, "finished", "127.0.0.2", finished_words(16, 0.2))
    feed.add(5.0, "finished", "127.0.0.2", finished_words(16, 0.3))
    (entry,) = feed.entries
    assert (entry.count, entry.text) == (2, "fetched all 16 items in 0.30 s")


def test_a_repeat_is_looked_for_only_among_the_newest_entries() -> None:
    feed = Feed()
    feed.add(0.0, "refused", "127.0.0.9", "garbage", "x")
    for k in range(COALESCE):
        feed.add(1.0, "register", f"127.0.1.{k}", "registered")
    feed.add(2.0, "refused", "127.0.0.9", "garbage", "x")
    assert len(feed) == COALESCE + 2


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 20),
    adds=st.lists(
        st.tuples(st.sampled_from(["refused", "join"]), st.integers(0, 3), st.integers(0, 2)),
        max_size=200,
    ),
)
def test_the_feed_stays_bounded_and_counts_every_event(
    size: int, adds: list[tuple[str, int, int]]
) -> None:
    feed = Feed(size)
    for t, (kind, who, key) in enumerate(adds):
        entry = feed.add(float(t), kind, str(who), f"{kind} {key}", str(key))
        assert feed.entries[-1] is entry  # the newest, whether new or a repeat
    assert len(feed) <= size
    ids = [e.id for e in feed.entries]
    assert ids == sorted(set(ids))
    assert feed.last_id == len(adds)
    if len(feed) < size:  # nothing dropped: every event is counted once
        assert sum(e.count for e in feed.entries) == len(adds)


def test_words() -> None:
    assert seconds_words(0.137) == "0.14 s"
    assert seconds_words(12.34) == "12.3 s"
    assert seconds_words(125) == "2 min 5 s"
    assert seconds_words(3725) == "1 h 2 min"
    assert registered_words(16, 1) == "registered: the tracker answered N = 16"
    assert registered_words(3000, 2) == "registered again (2 times): the tracker answered N = 3,000"
    assert finished_words(3000, 1.5) == "fetched all 3,000 items in 1.50 s"
    join = RingEvent("join", "bob", "127.0.0.3", 9402, "alice", (12, "of"), 2)
    assert ring_words(join, 16) == (
        "joined the ring from 127.0.0.3:9402; hosts item 12 ('of'); asks alice"
    )
    alone = RingEvent("join", "bob", "127.0.0.3", 9402, "bob", None, 1)
    assert ring_words(alone, 0) == (
        "joined the ring from 127.0.0.3:9402; hosts no item (the database is empty);"
        " asks itself (alone in the ring)"
    )
    refresh = RingEvent("refresh", "bob", "127.0.0.3", 9500, "alice", (12, "of"), 2)
    assert ring_words(refresh, 16) == (
        "registered again from 127.0.0.3:9500 (a refresh); asks alice"
    )
    prune = RingEvent("prune", "bob", "127.0.0.3", 9402, peers=4, why="a PING got reset")
    assert ring_words(prune, 16) == "pruned from the ring (4 left): a PING got reset"
    assert ring_words(RingEvent("peer_finished", "bob", "127.0.0.3", 9402), 16) == (
        "holds all 16 items"
    )
    refused = RingEvent("refused", "", "127.0.0.3", why="sent 'HELLO', a message ...")
    assert ring_words(refused, 16) == "sent 'HELLO', a message ..."
