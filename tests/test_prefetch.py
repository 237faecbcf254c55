"""The background producer behind training on a zoo kept on disk."""

import threading

import pytest

from weightspace import prefetch


def test_items_come_in_order_and_end():
    with prefetch.Prefetcher(lambda i: i * i, first=3, stop=8, depth=2) as items:
        assert list(items) == [9, 16, 25, 36, 49]


def test_an_error_in_the_producer_is_raised_by_the_consumer_in_its_place():
    def produce(i):
        if i == 2:
            raise OSError("disk gone")
        return i

    with prefetch.Prefetcher(produce, 0, 10) as items:
        assert [next(items), next(items)] == [0, 1]
        with pytest.raises(OSError, match="disk gone"):
            next(items)
        with pytest.raises(StopIteration):
            next(items)


def test_closing_stops_a_producer_that_is_ahead():
    produced = []
    items = prefetch.Prefetcher(produced.append, 0, 10**6, depth=3)
    next(items)
    items.close()
    count = len(produced)
    assert count <= 5 and not any(t.name == "prefetch" for t in threading.enumerate())
