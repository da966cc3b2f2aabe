"""Daily unit sales of every store x product, simulated vectorised a block of stores at a time.

The latent rate is a product of independent effects (store size, store x product affinity,
weekly and yearly seasonality, holidays, promotions, permanent price steps, trend and product
life cycle). Smooth and erratic items draw negative binomial units around it; intermittent and
lumpy items draw an occurrence and then a demand size, which is what gives them their ADI/CV^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import holidays
import numpy as np

from .catalog import CATEGORIES, ERRATIC, INTERMITTENT, LUMPY, SMOOTH, Catalog

_CAT_INDEX = {c.name: i for i, c in enumerate(CATEGORIES)}
_GROCERY_LIKE = [_CAT_INDEX["grocery"], _CAT_INDEX["beverages"]]
# The noise kinds of `Demand.noise` (see `simulate` for how each draws units around the mean).
NOISE_NEGATIVE_BINOMIAL, NOISE_INTERMITTENT, NOISE_LUMPY = 0, 1, 2
_GIFT_LIKE = [_CAT_INDEX["electronics"], _CAT_INDEX["toys"], _CAT_INDEX["apparel"]]


@dataclass(frozen=True)
class Demand:
    units: np.ndarray  # (S, P, T) int32 units sold
    expected: np.ndarray  # (S, P, W) expected units over the last W days (latent mean)
    price: np.ndarray  # (P, T) selling price of the day
    promo: np.ndarray  # (P, T) bool, on promotion
    closed: np.ndarray  # (T,) bool, stores closed (e.g. Christmas Day)
    # The noise around `expected`, per product (read only by `truth.py`, a replay diagnostic):
    # NOISE_* kind, the negative-binomial size k (of the day's units, or of a lumpy demand size),
    # and the mean of a demand size above 1 (occurrence items; 0 for the others).
    noise: np.ndarray | None = None
    dispersion: np.ndarray | None = None
    size_mean: np.ndarray | None = None


def _bump(doy: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = np.abs(doy - centre)
    d = np.minimum(d, 365.0 - d)  # wraps around the new year
    return np.exp(-0.5 * (d / width) ** 2)


def _season_shapes(days: np.ndarray) -> np.ndarray:
    """(C, T) yearly shape per category, before per-product scaling."""
    doy = np.array([d.timetuple().tm_yday for d in days], dtype=float)
    # Gift shopping builds up over the weeks before Christmas Eve and stops after it.
    to_xmas = np.array([(date(d.year, 12, 24) - d).days for d in days], dtype=float)
    xmas = np.where((to_xmas >= 0) & (to_xmas <= 45), np.exp(-np.clip(to_xmas, 0, None) / 12.0), 0.0)
    summer = _bump(doy, 185, 38)
    spring = _bump(doy, 115, 28)
    school = _bump(doy, 225, 12)
    winter = _bump(doy, 20, 25)
    garden = _bump(doy, 140, 35)
    shapes = {
        "grocery": 0.25 * xmas + 0.08 * summer,
        "beverages": 0.7 * summer + 0.35 * xmas,
        "household": 0.3 * spring + 0.1 * xmas,
        "personal_care": 0.5 * summer + 0.3 * xmas,
        "electronics": 2.5 * xmas + 0.6 * school,
        "toys": 5.0 * xmas + 0.2 * summer,
        "apparel": 0.5 * spring + 0.8 * school + 1.2 * xmas + 0.4 * winter,
        "garden": 4.0 * garden + 0.8 * summer,
    }
    return np.stack([shapes[c.name] for c in CATEGORIES])


# A low floor makes a category's off-season genuinely quiet (garden in winter).
_SEASON_FLOOR = np.array([0.25 if c.name == "garden" else 1.0 for c in CATEGORIES])


def _yearly(rng: np.random.Generator, cat: np.ndarray, days: list[date]) -> np.ndarray:
    strength = rng.uniform(0.5, 1.5, cat.size)
    shapes = _season_shapes(np.array(days))
    # Normalise on a full reference year so the level does not depend on the history length.
    ref = _season_shapes(np.array([date(2025, 1, 1) + timedelta(i) for i in range(365)]))
    raw = _SEASON_FLOOR[cat, None] + strength[:, None] * shapes[cat]
    norm = _SEASON_FLOOR[cat] + strength * ref.mean(axis=1)[cat]
    return raw / norm[:, None]


def _holiday_effects(days: list[date], country: str) -> tuple[np.ndarray, np.ndarray]:
    """(C, T) multiplicative holiday effect per category and (T,) store closure days."""
    years = range(days[0].year, days[-1].year + 1)
    try:
        # Shoppers follow the actual date, not the observed day off.
        cal = holidays.country_holidays(country, years=years, observed=False)
    except NotImplementedError as exc:
        raise ValueError(f"holiday_country {country!r} is not known to the holidays package") from exc
    index = {d: i for i, d in enumerate(days)}
    n_cat, n_days = len(CATEGORIES), len(days)
    effect = np.ones((n_cat, n_days))
    closed = np.zeros(n_days, dtype=bool)

    def scale(d: date, cats: list[int] | slice, factor: float) -> None:
        i = index.get(d)
        if i is not None:
            effect[cats, i] *= factor

    for d, name in cal.items():
        is_closed = (d.month == 12 and d.day == 25) or "Thanksgiving" in name
        major = is_closed or any(k in name for k in ("New Year", "Independence", "Memorial", "Labor"))
        if is_closed and d in index:
            closed[index[d]] = True
        # Stocking up for the holiday meal or barbecue in the two days before.
        scale(d - timedelta(1), _GROCERY_LIKE, 1.6 if major else 1.12)
        scale(d - timedelta(2), _GROCERY_LIKE, 1.3 if major else 1.05)
        if not is_closed:
            # A day off: fewer grocery runs, more browsing and holiday sales events.
            scale(d, _GROCERY_LIKE, 0.75 if major else 0.95)
            scale(d, _GIFT_LIKE + [_CAT_INDEX["garden"], _CAT_INDEX["household"]], 1.25 if major else 1.1)
        if "Thanksgiving" in name:
            scale(d + timedelta(1), _GIFT_LIKE, 2.6)  # Black Friday
            scale(d + timedelta(1), slice(None), 1.3)
            scale(d + timedelta(3), [_CAT_INDEX["electronics"]], 1.5)  # Cyber Monday spill-over
    for d in days:
        if d.month == 12 and d.day == 24:
            scale(d, _GROCERY_LIKE, 1.5)
            scale(d, _GIFT_LIKE, 1.4)
        if d.month == 12 and d.day == 31:
            scale(d, [_CAT_INDEX["beverages"]], 1.8)
    return effect, closed


def _promotions(rng: np.random.Generator, catalog: Catalog, days: list[date],
                regular: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chain-wide promotions (weekly circulars): (P, T) promo flag, price and demand factor."""
    n_prod, n_days = regular.shape
    promo = np.zeros((n_prod, n_days), dtype=bool)
    price = regular.copy()
    factor = np.ones((n_prod, n_days))
    # Circulars start on Wednesdays.
    first_wed = (2 - days[0].weekday()) % 7
    for p in np.flatnonzero(catalog.promotable):
        n_promos = rng.poisson(n_days / 365.0 * rng.uniform(3.0, 8.0))
        if n_promos == 0:
            continue
        discount = rng.uniform(0.10, 0.35)
        elasticity = rng.uniform(2.0, 4.0)  # display and advertising add to the price effect
        lift = (1.0 - discount) ** (-elasticity)
        for _ in range(n_promos):
            start = first_wed + 7 * rng.integers(0, max(1, (n_days - first_wed) // 7))
            stop = min(n_days, start + 7 * rng.integers(1, 3))
            if promo[p, max(0, start - 7):stop + 7].any():
                continue  # keep promos apart so each one has a clean baseline
            promo[p, start:stop] = True
            price[p, start:stop] = np.round(regular[p, start:stop] * (1.0 - discount), 2)
            factor[p, start:stop] *= lift
            # Pantry loading: customers buy less right after a promotion ends.
            factor[p, stop:stop + 7] *= 0.85
    return promo, price, factor


def _price_steps(rng: np.random.Generator, current: np.ndarray, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Permanent price changes ending at today's price: (P, T) regular price and demand factor."""
    n_prod = current.size
    log_steps = np.zeros((n_prod, n_days))
    has_steps = rng.random(n_prod) < 0.35
    for p in np.flatnonzero(has_steps):
        for _ in range(rng.integers(1, 3)):
            t = rng.integers(1, n_days)
            # Mostly inflation-driven increases, some price cuts.
            step = rng.uniform(0.02, 0.10) if rng.random() < 0.75 else -rng.uniform(0.05, 0.15)
            log_steps[p, t] += np.log1p(step)
    cum = np.cumsum(log_steps, axis=1)
    rel = np.exp(cum - cum[:, -1:])  # 1.0 on the last day
    regular = np.round(current[:, None] * rel, 2)
    elasticity = rng.uniform(0.8, 2.5, n_prod)
    return regular, rel ** (-elasticity[:, None])


def _life_cycle(rng: np.random.Generator, n_prod: int, n_days: int) -> np.ndarray:
    """(P, T) availability: a few launches during the history and a couple discontinued items."""
    life = np.ones((n_prod, n_days))
    if n_prod < 6 or n_days < 60:
        return life
    order = rng.permutation(n_prod)
    n_new = max(1, round(0.05 * n_prod))
    t = np.arange(n_days)
    for p in order[:n_new]:
        launch = rng.integers(n_days // 4, n_days - 30)
        life[p] = np.where(t >= launch, 1.0 - np.exp(-(t - launch + 1) / 14.0), 0.0)
    for p in order[n_new:n_new + 2]:
        end = rng.integers(n_days // 2, n_days - 21)
        life[p, end:] = 0.0
    return life


def simulate(rng: np.random.Generator, catalog: Catalog, store_size: np.ndarray,
             store_weekly_tilt: np.ndarray, days: list[date], holiday_country: str,
             expected_window: int = 28, *, block_stores: int | None = None,
             units: np.ndarray | None = None) -> Demand:
    """The chain's daily demand. `block_stores` simulates that many stores at a time (all of them
    by default) and `units`, when given, receives the units (an (S, P, T) int32 array, e.g. a
    memory map on disk); neither changes a drawn value."""
    n_store, n_prod, n_days = store_size.size, catalog.category.size, len(days)
    cat = catalog.category
    dclass = catalog.demand_class
    current_price = catalog.products["price"].to_numpy(dtype=float)

    regular, price_factor = _price_steps(rng, current_price, n_days)
    promo, price, promo_factor = _promotions(rng, catalog, days, regular)
    holiday_effect, closed = _holiday_effects(days, holiday_country)
    yearly = _yearly(rng, cat, days)
    growth = rng.normal(0.02, 0.12, n_prod)  # per year, level anchored on the last day
    trend = np.exp(growth[:, None] * (np.arange(n_days) - (n_days - 1))[None, :] / 365.0)
    life = _life_cycle(rng, n_prod, n_days)
    # (P, T): everything that does not depend on the store.
    product_t = yearly * holiday_effect[cat] * price_factor * promo_factor * trend * life
    product_t[:, closed] = 0.0

    # Weekly profile, flattened or sharpened per store (commuter stores are flatter).
    weekly = np.array([c.weekly for c in CATEGORIES])
    weekly = weekly / weekly.mean(axis=1, keepdims=True)
    dow = np.array([d.weekday() for d in days])
    store_weekly = 1.0 + store_weekly_tilt[:, None, None] * (weekly[None, :, :] - 1.0)  # (S, C, 7)
    affinity = store_size[:, None] * rng.lognormal(-0.06, 0.35, (n_store, n_prod))  # (S, P)

    # Per-product base level at an average store on an average day.
    base = np.empty(n_prod)
    k = np.empty(n_prod)
    size_mean = np.zeros(n_prod)
    for cls, (lo, hi), (klo, khi) in (
        (SMOOTH, (4.0, 40.0), (8.0, 30.0)),
        (ERRATIC, (2.0, 15.0), (0.7, 1.6)),
        (INTERMITTENT, (0.04, 0.35), (0.0, 0.0)),  # occurrence rate per day
        (LUMPY, (0.03, 0.20), (0.5, 0.9)),  # occurrence rate; k is the size dispersion
    ):
        m = dclass == cls
        base[m] = np.exp(rng.uniform(np.log(lo), np.log(hi), m.sum()))
        k[m] = rng.uniform(klo, khi, m.sum())
    size_mean[dclass == INTERMITTENT] = rng.uniform(0.1, 0.4, (dclass == INTERMITTENT).sum())
    size_mean[dclass == LUMPY] = rng.uniform(3.0, 9.0, (dclass == LUMPY).sum())

    if units is None:
        units = np.zeros((n_store, n_prod, n_days), dtype=np.int32)
    elif units.shape != (n_store, n_prod, n_days) or units.dtype != np.int32:
        raise ValueError(f"units must be an int32 array of shape {(n_store, n_prod, n_days)}")
    expected = np.zeros((n_store, n_prod, min(expected_window, n_days)))
    w = expected.shape[2]
    # Stores are simulated a block at a time so memory follows the block, not the chain. The draws
    # come out in the order one pass over the whole chain would make them (below), so the block
    # size never changes a unit.
    block = n_store if block_stores is None else max(1, int(block_stores))
    blocks = [slice(a, min(a + block, n_store)) for a in range(0, n_store, block)]

    def multiplier(rows: slice, idx: np.ndarray) -> np.ndarray:
        week = store_weekly[rows, cat[idx]][:, :, dow]  # (s, p, T)
        return affinity[rows, idx, None] * product_t[None, idx, :] * week

    cont = np.flatnonzero((dclass == SMOOTH) | (dclass == ERRATIC))
    if cont.size:
        for rows in blocks:
            mean = base[cont][None, :, None] * multiplier(rows, cont)
            kk = np.broadcast_to(k[cont][None, :, None], mean.shape)
            units[rows, cont, :] = rng.negative_binomial(kk, kk / (kk + mean))
            expected[rows, cont, :] = mean[:, :, -w:]
            del mean, kk
    occ_idx = np.flatnonzero((dclass == INTERMITTENT) | (dclass == LUMPY))
    if occ_idx.size:
        # One pass draws every occurrence, then every intermittent size, then every lumpy size.
        # Per block, the occurrences come from `rng` and the intermittent sizes from a second
        # stream started where the occurrences end (one 64-bit draw per uniform); the lumpy sizes
        # follow the last intermittent size, so their hits are kept until then.
        sizes = _skipped(rng, n_store * occ_idx.size * n_days) if len(blocks) > 1 else rng
        lumpy_hits: list[tuple[slice, tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        is_lumpy = dclass[occ_idx] == LUMPY
        for rows in blocks:
            rate = base[occ_idx][None, :, None] * multiplier(rows, occ_idx)
            p_occ = -np.expm1(-rate)
            del rate
            hit = rng.random(p_occ.shape) < p_occ
            expected[rows, occ_idx, :] = (p_occ * (1.0 + size_mean[occ_idx])[None, :, None])[:, :, -w:]
            del p_occ
            s_i, p_i, t_i = np.nonzero(hit)
            del hit
            lumpy = is_lumpy[p_i]
            prod = occ_idx[p_i[~lumpy]]
            # Intermittent: sizes near 1 (low CV^2).
            units[s_i[~lumpy] + rows.start, prod, t_i[~lumpy]] = 1 + sizes.poisson(size_mean[prod])
            lumpy_hits.append((rows, (s_i[lumpy], p_i[lumpy], t_i[lumpy])))
        for rows, (s_i, p_i, t_i) in lumpy_hits:
            prod = occ_idx[p_i]
            sm, kl = size_mean[prod], k[prod]
            # Lumpy: heavy-tailed sizes (high CV^2).
            units[s_i + rows.start, prod, t_i] = 1 + sizes.negative_binomial(kl, kl / (kl + sm))
        if sizes is not rng:
            rng.bit_generator.state = sizes.bit_generator.state  # where one pass would leave it
    noise = np.where(dclass == INTERMITTENT, NOISE_INTERMITTENT,
                     np.where(dclass == LUMPY, NOISE_LUMPY, NOISE_NEGATIVE_BINOMIAL))
    return Demand(units=units, expected=expected, price=price, promo=promo, closed=closed,
                  noise=noise, dispersion=k, size_mean=size_mean)


def _skipped(rng: np.random.Generator, draws: int) -> np.random.Generator:
    """A generator on `rng`'s stream `draws` 64-bit draws ahead (rng itself is not moved)."""
    bit = rng.bit_generator
    if not hasattr(bit, "advance"):
        raise ValueError(f"simulating in blocks needs a bit generator that can advance (not {type(bit).__name__})")
    ahead = type(bit)()
    ahead.state = bit.state
    ahead.advance(draws)
    # advance() drops a buffered 32-bit half-draw; doubles never use it, so carry it on as one
    # stream would.
    state = ahead.state
    state.update({k: v for k, v in bit.state.items() if k in ("has_uint32", "uinteger")})
    ahead.state = state
    return np.random.Generator(ahead)


def plan_promotions(rng: np.random.Generator, promotable: np.ndarray, history_promo: np.ndarray,
                    first_day: date, n_days: int) -> list[tuple[int, int, int]]:
    """Chain-wide promotions planned for the `n_days` days from `first_day`, drawn like the
    history's (`_promotions`): Wednesday starts, one or two weeks, a week apart from any other
    promotion of the product, including the last ones of history. Returns (product index,
    first day offset, last day offset inclusive); a promotion may run past the `n_days`."""
    n_prod = promotable.size
    tail = history_promo[:, -7:]
    # History's last week, the planned days and room for a two-week promotion starting late.
    busy = np.concatenate([tail, np.zeros((n_prod, n_days + 14), dtype=bool)], axis=1)
    offset = tail.shape[1]
    first_wed = (2 - first_day.weekday()) % 7
    planned = []
    for p in np.flatnonzero(promotable):
        n_promos = rng.poisson(n_days / 365.0 * rng.uniform(3.0, 8.0))
        for _ in range(n_promos):
            start = first_wed + 7 * int(rng.integers(0, max(1, (n_days - first_wed + 6) // 7)))
            stop = start + 7 * int(rng.integers(1, 3))
            if busy[p, offset + start - 7:offset + stop + 7].any():
                continue
            busy[p, offset + start:offset + stop] = True
            planned.append((int(p), start, stop - 1))
    return sorted(planned)
