"""Progress: the rate counts this process's work only; the time left counts what a resume skipped."""

from unittest import mock

from weightspace import progress


def test_rate_and_time_left_after_a_resume():
    clock = mock.patch.object(progress.time, "time", return_value=100.0)
    with clock as now:
        tracker = progress.Progress(total=1000, done_before=400)
        assert tracker.eta() == "--:--:--"
        tracker.skip(100)  # found done: 500 of 1000 left
        now.return_value = 110.0
        tracker.advance(50)  # 50 in 10 s
        assert tracker.rate == 5.0
        assert tracker.eta() == "00:01:30"  # 450 left at 5/s
        assert tracker.share_done_here == 0.05  # 50 of 1000 done by this process


def test_an_empty_total_is_all_done_here():
    assert progress.Progress(total=0).share_done_here == 1.0
