from claracore.pool.policy import Resident, choose_evictions

GB = 2**30


def r(name: str, ram: int = 0, vram: int = 0, busy: int = 0, pinned: bool = False, t: float = 0) -> Resident:
    return Resident(name=name, vram=vram, ram=ram, in_flight=busy, pinned=pinned, last_used=t)


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
    assert "pin" in plan.why


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
