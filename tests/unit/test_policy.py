from claracore.pool.policy import Resident, choose_evictions

GB = 2**30


def r(
    name: str, ram: int = 0, vram: int = 0, busy: int = 0, pinned: bool = False, t: float = 0, spare: int = 0
) -> Resident:
    return Resident(name=name, vram=vram, ram=ram, in_flight=busy, pinned=pinned, last_used=t, spare=spare)


def test_fits_without_eviction() -> None:
    plan = choose_evictions([r("a", ram=GB)], 0, GB, 0, 4 * GB)
    assert plan.fits and plan.evict == ()


def test_evicts_least_recently_used_first_and_only_as_many_as_needed() -> None:
    residents = [r("new", ram=GB, t=3), r("old", ram=GB, t=1), r("mid", ram=GB, t=2)]
    plan = choose_evictions(residents, 0, 2 * GB, 0, 4 * GB)
    assert plan.fits and plan.evict == ("old",)


def test_never_evicts_busy_or_pinned() -> None:
    residents = [
        r("busy", ram=2 * GB, busy=1, t=0),
        r("pin", ram=GB, pinned=True, t=0),
        r("idle", ram=GB, t=5),
    ]
    plan = choose_evictions(residents, 0, 2 * GB, 0, 4 * GB)
    assert not plan.fits
    assert plan.fits_when_idle  # once "busy" finishes it can go
    assert plan.why == "models in use and pinned models (pin) hold the rest"
    plan = choose_evictions(residents[:1], 0, 3 * GB, 0, 4 * GB)
    assert not plan.fits and plan.fits_when_idle
    assert plan.why == "models in use hold the rest"  # names no pinned models when there are none


def test_pinned_blocks_for_good() -> None:
    plan = choose_evictions([r("pin", ram=3 * GB, pinned=True)], 0, 2 * GB, 0, 4 * GB)
    assert not plan.fits and not plan.fits_when_idle


def test_larger_than_budget_never_fits() -> None:
    plan = choose_evictions([], 0, 5 * GB, 0, 4 * GB)
    assert not plan.fits and not plan.fits_when_idle
    assert "whole" in plan.why


def test_only_evicts_models_that_free_the_short_kind() -> None:
    residents = [r("ram-only", ram=GB, t=0), r("gpu", vram=3 * GB, t=1)]
    plan = choose_evictions(residents, 2 * GB, 0, 4 * GB, 8 * GB)
    assert plan.fits and plan.evict == ("gpu",)


def test_spare_memory_is_taken_back_before_any_model_is_evicted() -> None:
    """A prompt cache's grant shrinks, least recently used first, busy and pinned ones too."""
    residents = [
        r("old", ram=2 * GB, t=1, spare=GB),
        r("pin", ram=2 * GB, pinned=True, busy=1, t=5, spare=GB),
    ]
    plan = choose_evictions(residents, 0, 3 * GB, 0, 5 * GB + GB // 2)  # fixed parts: 1 + 1 + 3
    assert plan.fits and plan.evict == ()
    assert plan.shrink == (("old", 0), ("pin", GB // 2))  # 1.5 GB over: all of "old"'s spare first
    assert plan.room_ram == 0


def test_spare_memory_never_keeps_a_model_resident_nor_blocks_a_fit() -> None:
    plan = choose_evictions([r("a", ram=3 * GB, spare=2 * GB)], 0, 3 * GB, 0, 4 * GB)
    assert plan.fits and plan.evict == () and plan.shrink == (("a", 0),)
    plan = choose_evictions([r("a", ram=3 * GB, t=0, spare=GB), r("b", ram=GB, t=1)], 0, 3 * GB, 0, 4 * GB)
    assert plan.fits and plan.evict == ("a",) and plan.shrink == ()  # its spare left with it
    assert plan.room_ram == 0


def test_room_left_is_what_a_newcomer_may_spare() -> None:
    plan = choose_evictions([r("a", ram=2 * GB, spare=GB)], 0, GB, 0, 8 * GB)
    assert plan.fits and plan.shrink == () and plan.room_ram == 5 * GB
