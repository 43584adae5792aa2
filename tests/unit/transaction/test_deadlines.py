"""``Deadlines``: one live timer per (owner, name), cancel and re-arm without searching,
due timers earliest first, time passed in as a number."""

from __future__ import annotations

import pytest

from sipstack.deadlines import Deadlines


class Owner:
    """A timer owner; two owners are distinct even when equal."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Owner) and other.label == self.label

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"Owner({self.label!r})"


@pytest.fixture
def d() -> Deadlines:
    return Deadlines()


def test_empty_has_no_next_and_nothing_due(d):
    assert d.next() is None
    assert d.pop_due(1e9) == []
    assert len(d) == 0


def test_next_is_the_earliest_live_timer(d):
    a, b = Owner("a"), Owner("b")
    d.set(5.0, a, "X")
    d.set(2.0, b, "Y")
    d.set(3.0, a, "Z")
    assert d.next() == 2.0
    assert len(d) == 3


def test_pop_due_returns_due_timers_earliest_first_and_leaves_the_rest(d):
    a, b = Owner("a"), Owner("b")
    d.set(3.0, a, "C")
    d.set(1.0, b, "A")
    d.set(2.0, a, "B")
    d.set(9.0, b, "D")
    assert d.pop_due(2.5) == [(b, "A"), (a, "B")]
    assert d.next() == 3.0
    assert d.pop_due(3.0) == [(a, "C")]  # due at exactly ``now``
    assert d.pop_due(8.999) == []
    assert d.pop_due(100.0) == [(b, "D")]
    assert d.next() is None and len(d) == 0


def test_timers_due_at_the_same_time_fire_in_the_order_they_were_set(d):
    owners = [Owner(str(i)) for i in range(5)]
    for owner in owners:
        d.set(1.0, owner, "T")
    assert d.pop_due(1.0) == [(owner, "T") for owner in owners]


def test_a_timer_fires_once(d):
    a = Owner("a")
    d.set(1.0, a, "X")
    assert d.pop_due(1.0) == [(a, "X")]
    assert d.pop_due(2.0) == []
    assert not d.is_set(a, "X")


def test_cancel_removes_the_timer(d):
    a, b = Owner("a"), Owner("b")
    d.set(1.0, a, "X")
    d.set(2.0, b, "X")
    d.cancel(a, "X")
    assert not d.is_set(a, "X") and d.is_set(b, "X")
    assert d.next() == 2.0
    assert d.pop_due(10.0) == [(b, "X")]
    assert len(d) == 0


def test_cancel_of_an_unset_timer_is_harmless(d):
    a = Owner("a")
    d.cancel(a, "X")
    d.cancel_all(a, ("X", "Y"))
    assert len(d) == 0 and d.next() is None


def test_cancel_all_removes_the_named_timers_of_one_owner(d):
    a, b = Owner("a"), Owner("b")
    for name in ("A", "B", "D"):
        d.set(1.0, a, name)
    d.set(1.0, b, "A")
    d.cancel_all(a, ("A", "B"))
    assert d.pop_due(1.0) == [(a, "D"), (b, "A")]


def test_re_arming_later_replaces_the_earlier_setting(d):
    a = Owner("a")
    d.set(1.0, a, "X")
    d.set(4.0, a, "X")
    assert len(d) == 1 and d.next() == 4.0
    assert d.pop_due(3.9) == []
    assert d.pop_due(4.0) == [(a, "X")]
    assert d.pop_due(100.0) == []


def test_re_arming_earlier_replaces_the_later_setting(d):
    a = Owner("a")
    d.set(4.0, a, "X")
    d.set(0.5, a, "X")
    assert len(d) == 1 and d.next() == 0.5
    assert d.pop_due(0.5) == [(a, "X")]
    assert d.pop_due(100.0) == []


def test_re_arming_after_cancel_makes_a_live_timer_again(d):
    a = Owner("a")
    d.set(1.0, a, "X")
    d.cancel(a, "X")
    d.set(3.0, a, "X")
    assert d.pop_due(2.0) == []
    assert d.pop_due(3.0) == [(a, "X")]


def test_owners_are_told_apart_by_identity_not_equality(d):
    a1, a2 = Owner("same"), Owner("same")
    assert a1 == a2
    d.set(1.0, a1, "X")
    d.set(2.0, a2, "X")
    d.cancel(a1, "X")
    assert d.is_set(a2, "X")
    fired = d.pop_due(5.0)
    assert len(fired) == 1 and fired[0][0] is a2


def test_names_are_independent_per_owner(d):
    a = Owner("a")
    d.set(1.0, a, "X")
    d.set(1.0, a, "Y")
    d.cancel(a, "X")
    assert d.pop_due(1.0) == [(a, "Y")]


def test_next_skips_cancelled_and_replaced_entries(d):
    a, b = Owner("a"), Owner("b")
    d.set(1.0, a, "X")
    d.set(2.0, a, "Y")
    d.set(3.0, b, "X")
    d.cancel(a, "X")
    d.set(4.0, a, "Y")
    assert d.next() == 3.0
    assert d.pop_due(3.5) == [(b, "X")]
    assert d.next() == 4.0


def test_time_is_any_number_from_any_origin(d):
    a = Owner("a")
    d.set(-5.0, a, "X")
    d.set(1_000_000.25, a, "Y")
    assert d.pop_due(-5.0) == [(a, "X")]
    assert d.next() == 1_000_000.25


# -- set_after: first-in-first-out lanes per delay, merged with the heap -----------------------


def test_set_after_is_set_at_now_plus_delay(d):
    a, b, c = Owner("a"), Owner("b"), Owner("c")
    d.set_after(10.0, 32.0, a, "L")  # due 42
    d.set_after(11.0, 0.5, b, "A")  # due 11.5
    d.set(20.0, c, "X")  # the heap
    assert d.next() == 11.5
    assert d.pop_due(30.0) == [(b, "A"), (c, "X")]
    assert d.next() == 42.0
    assert d.pop_due(42.0) == [(a, "L")]
    assert d.next() is None and len(d) == 0


def test_due_timers_from_lanes_and_heap_come_earliest_first_then_in_order_set(d):
    owners = [Owner(str(i)) for i in range(6)]
    d.set_after(0.0, 5.0, owners[0], "K")  # 5.0, lane 5
    d.set_after(1.0, 4.0, owners[1], "T")  # 5.0, lane 4, set later
    d.set(4.0, owners[2], "H")  # 4.0, heap
    d.set_after(2.0, 1.0, owners[3], "A")  # 3.0, lane 1
    d.set_after(3.5, 1.0, owners[4], "A")  # 4.5, lane 1
    d.set(5.0, owners[5], "H")  # 5.0, heap, set last
    assert d.pop_due(10.0) == [
        (owners[3], "A"),
        (owners[2], "H"),
        (owners[4], "A"),
        (owners[0], "K"),
        (owners[1], "T"),
        (owners[5], "H"),
    ]


def test_cancelled_and_rearmed_lane_timers_fire_once_at_their_last_time(d):
    a, b = Owner("a"), Owner("b")
    d.set_after(0.0, 0.5, a, "E")
    d.set_after(0.0, 32.0, a, "F")
    d.cancel(a, "E")
    d.set_after(0.1, 0.5, b, "E")
    assert d.next() == 0.6  # a's cancelled E (0.5) is skipped
    d.set_after(0.2, 0.5, b, "E")  # re-armed: 0.7, the 0.6 entry is stale
    assert d.pop_due(0.65) == []
    assert d.pop_due(0.7) == [(b, "E")]
    d.cancel_all(a, ("E", "F"))
    assert d.pop_due(100.0) == [] and d.next() is None and len(d) == 0


def test_a_clock_that_steps_back_still_orders_a_lane_exactly(d):
    a, b = Owner("a"), Owner("b")
    d.set_after(10.0, 1.0, a, "X")  # 11.0
    d.set_after(9.0, 1.0, b, "X")  # 10.0: earlier than the lane's last, so it goes to the heap
    assert d.next() == 10.0
    assert d.pop_due(10.5) == [(b, "X")]
    assert d.pop_due(11.0) == [(a, "X")]


def test_delays_beyond_the_lane_limit_share_the_heap(d):
    from sipstack.deadlines import MAX_LANES

    owners = [Owner(str(i)) for i in range(MAX_LANES + 10)]
    for i, owner in enumerate(owners):
        d.set_after(0.0, 1.0 + i, owner, "T")
    assert len(d._lanes) == MAX_LANES
    assert d.next() == 1.0
    assert d.pop_due(1000.0) == [(owner, "T") for owner in owners]
    assert d.next() is None


def test_new_min_sees_lane_timers(d):
    a = Owner("a")
    d.take_new_min()
    d.set_after(5.0, 32.0, a, "L")
    assert d.take_new_min() == 37.0
    assert d.take_new_min() == float("inf")


def test_a_grid_moves_a_timer_to_the_next_multiple_never_earlier(d):
    owners = [Owner(str(i)) for i in range(4)]
    d.set_after(10.01, 5.0, owners[0], "K", grid=0.1)  # 15.01 -> 15.1
    d.set_after(10.05, 5.0, owners[1], "K", grid=0.1)  # 15.05 -> 15.1: the same wake-up
    d.set_after(10.10, 5.0, owners[2], "K", grid=0.1)  # 15.10 stays
    d.set_after(10.02, 5.0, owners[3], "K")  # no grid: its own lane, exact
    assert d.next() == 15.02
    assert d.pop_due(15.09) == [(owners[3], "K")]
    due = d.next()
    assert due == pytest.approx(15.1) and due >= 15.1
    assert d.pop_due(due) == [(owners[0], "K"), (owners[1], "K"), (owners[2], "K")]
