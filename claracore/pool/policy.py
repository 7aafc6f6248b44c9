"""Which models to evict so a new one fits: a pure function of a snapshot, tested without models."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resident:
    """What the policy needs to know of one loaded (or loading) model.

    `spare` is the part of `ram` the model holds for a cache it can give back without unloading
    (an LLM's prompt cache sized "auto"): it is reclaimed before any model is evicted.
    """

    name: str
    vram: int
    ram: int
    in_flight: int
    pinned: bool
    last_used: float
    spare: int = 0


@dataclass(frozen=True)
class Eviction:
    """What to evict: `evict` fits the newcomer when `fits`; otherwise `why` says what blocks it.

    `fits_when_idle` tells a blocked load whether waiting can help: it is True when evicting
    busy (but unpinned) models too would make room, so the caller may wait for them to finish.
    `shrink` gives residents that keep part of their spare memory the amount they may keep;
    `room_ram` is the RAM left free once the newcomer is in.
    """

    fits: bool
    evict: tuple[str, ...] = ()
    fits_when_idle: bool = False
    why: str = ""
    shrink: tuple[tuple[str, int], ...] = ()
    room_ram: int = 0


def choose_evictions(
    residents: list[Resident], need_vram: int, need_ram: int, budget_vram: int, budget_ram: int
) -> Eviction:
    """Evict idle, unpinned models, least recently used first, until the newcomer fits.

    A model is only evicted if it frees memory of a kind that is short. A model that needs
    more than the whole budget never fits, whatever is evicted. Spare memory never costs a model
    its place: the plan counts residents without it, then shrinks spares (of the least recently
    used first, busy or pinned ones too) to what the budget has left.
    """
    if need_vram > budget_vram or need_ram > budget_ram:
        return Eviction(fits=False, why="larger than the whole memory budget")
    used_vram = sum(r.vram for r in residents)
    used_ram = sum(r.ram - r.spare for r in residents)

    def short(vram: int, ram: int) -> tuple[bool, bool]:
        return vram + need_vram > budget_vram, ram + need_ram > budget_ram

    evict: list[str] = []
    for r in sorted((r for r in residents if not r.pinned and r.in_flight == 0), key=lambda r: r.last_used):
        vram_short, ram_short = short(used_vram, used_ram)
        if not (vram_short or ram_short):
            break
        if (vram_short and r.vram) or (ram_short and r.ram - r.spare):
            evict.append(r.name)
            used_vram -= r.vram
            used_ram -= r.ram - r.spare
    if not any(short(used_vram, used_ram)):
        kept = sorted((r for r in residents if r.spare and r.name not in evict), key=lambda r: r.last_used)
        over = used_ram + sum(r.spare for r in kept) + need_ram - budget_ram
        shrink: list[tuple[str, int]] = []
        for r in kept:
            take = min(r.spare, max(0, over))
            if take:
                shrink.append((r.name, r.spare - take))
                over -= take
        return Eviction(fits=True, evict=tuple(evict), shrink=tuple(shrink), room_ram=max(0, -over))
    busy = [r for r in residents if not r.pinned and r.in_flight > 0]
    idle_vram = used_vram - sum(r.vram for r in busy)
    idle_ram = used_ram - sum(r.ram - r.spare for r in busy)
    pinned = [r.name for r in residents if r.pinned]
    why = "models in use" + (f" and pinned models ({', '.join(pinned)})" if pinned else "") + " hold the rest"
    return Eviction(fits=False, fits_when_idle=not any(short(idle_vram, idle_ram)), why=why)
