"""Distribution of demand over a protection window, vectorised over positions.

Two families, chosen per position:
- fast movers: the forecast's own window quantiles (q50..q99) joined by a piecewise-linear
  quantile function, an exponential tail above q99 and a lower knot calibrated so the
  distribution's mean equals the forecast mean;
- slow movers: a discrete distribution (Poisson, or negative binomial when the forecast is
  over-dispersed) with the forecast's mean and standard deviation.

Everything downstream (levels, expected lost units, the marginal value of one more unit) comes
from the loss function L(x) = E[(D - x)+], which is convex and decreasing in x, so marginal
values L(x) - L(x + 1) are non-increasing: the concavity the transfer model relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

QUANTILE_LEVELS = np.array([0.5, 0.8, 0.9, 0.95, 0.99])
QUANTILE_COLUMNS = ["q50", "q80", "q90", "q95", "q99"]
_KNOT_P = np.concatenate([[0.0], QUANTILE_LEVELS])
_TAIL_MASS = 1.0 - QUANTILE_LEVELS[-1]


@dataclass(frozen=True)
class WindowDemand:
    mean: np.ndarray  # (n,) expected demand over the window
    discrete: np.ndarray  # (n,) bool: Poisson / negative binomial rows
    nb_n: np.ndarray  # (n,) negative-binomial size; inf means Poisson
    knots: np.ndarray  # (n, 6) demand at probabilities _KNOT_P (continuous rows)
    tail: np.ndarray  # (n,) scale of the exponential tail above q99 (continuous rows)

    def __len__(self) -> int:
        return len(self.mean)

    @classmethod
    def from_forecast(cls, mean: np.ndarray, std: np.ndarray, quantiles: np.ndarray,
                      discrete: np.ndarray) -> "WindowDemand":
        mean = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
        std = np.maximum(np.nan_to_num(np.asarray(std, dtype=np.float64)), 0.0)
        q = np.maximum(np.asarray(quantiles, dtype=np.float64).reshape(len(mean), 5), 0.0)
        # Quantile crossing in the input would make the CDF non-monotone.
        q = np.maximum.accumulate(q, axis=1)
        tail = (q[:, 4] - q[:, 3]) / np.log((1 - QUANTILE_LEVELS[3]) / _TAIL_MASS)
        knots = np.empty((len(mean), 6))
        knots[:, 1:] = q
        # Mean = 0.25*x0 + 0.75*q50 + (areas above q50) + tail mass*scale; solve for x0.
        knots[:, 0] = np.clip(4.0 * (mean - 0.75 * q[:, 0] - _upper_area(q, tail)), 0.0, q[:, 0])
        var = std ** 2
        over = var > mean * 1.05
        nb_n = np.full(len(mean), np.inf)
        nb_n[over] = mean[over] ** 2 / (var[over] - mean[over])
        return cls(mean=mean, discrete=np.asarray(discrete, dtype=bool), nb_n=nb_n, knots=knots,
                   tail=tail)

    def take(self, idx: np.ndarray) -> "WindowDemand":
        return WindowDemand(self.mean[idx], self.discrete[idx], self.nb_n[idx], self.knots[idx],
                            self.tail[idx])

    def scaled(self, fraction: np.ndarray) -> "WindowDemand":
        """Demand over a fraction of the window, days taken as independent: the mean scales by
        the fraction, a negative binomial keeps its p (sizes add up), the spread of the quantile
        knots around the mean by its square root. Used only to value transfers over a shorter
        horizon than the protection window; levels always come from the window itself."""
        f = np.clip(np.asarray(fraction, dtype=np.float64), 1e-9, None)
        mean = self.mean * f
        knots = mean[:, None] + (self.knots - self.mean[:, None]) * np.sqrt(f)[:, None]
        return WindowDemand(mean=mean, discrete=self.discrete, nb_n=self.nb_n * f,
                            knots=np.maximum(knots, 0.0), tail=self.tail * np.sqrt(f))

    # -- loss function ---------------------------------------------------------------------------
    def loss(self, x: np.ndarray) -> np.ndarray:
        """E[(D - x)+] per row; x has shape (n,) or (n, k)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.empty(np.broadcast_shapes(x.shape, self.mean.shape[:1] + x.shape[1:]))
        d = self.discrete
        if d.any():
            out[d] = _discrete_loss(self.mean[d], self.nb_n[d], x[d])
        c = ~d
        if c.any():
            out[c] = _continuous_loss(self.knots[c], self.tail[c], x[c])
        return out

    def sold_gain(self, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Expected extra units sold by raising stock from x to x + k: L(x) - L(x + k)."""
        x = np.asarray(x, dtype=np.float64)
        return self.loss(x) - self.loss(x + k)

    # -- levels ----------------------------------------------------------------------------------
    def csl_level(self, p: np.ndarray) -> np.ndarray:
        """Smallest integer stock level S with P(D <= S) >= p."""
        p = np.broadcast_to(np.asarray(p, dtype=np.float64), self.mean.shape)
        out = np.zeros(len(self.mean))
        d = self.discrete
        if d.any():
            out[d] = _discrete_ppf(p[d], self.mean[d], self.nb_n[d])
        c = ~d
        if c.any():
            out[c] = np.ceil(_continuous_quantile(self.knots[c], self.tail[c], p[c]) - 1e-9)
        return np.maximum(out, 0.0)

    def case_level(self, pack: np.ndarray, margin: np.ndarray, holding: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> np.ndarray:
        """Smallest integer x in [lo, hi] at which a case of `pack` units no longer pays: where
        margin x (L(x) - L(x + pack)), the margin of the sales it adds, falls below
        holding x (pack - (L(x) - L(x + pack))), the holding of the units of it left over (hi
        where it still pays at hi - 1). L(x) - L(x + pack) decreases in x (L is convex), so the
        test is monotone and an integer bisection finds the point."""
        pack = np.asarray(pack, dtype=np.float64)
        margin = np.asarray(margin, dtype=np.float64)
        holding = np.asarray(holding, dtype=np.float64)

        def pays(x: np.ndarray) -> np.ndarray:
            gained = self.loss(x) - self.loss(x + pack)
            return margin * gained >= holding * (pack - gained)

        lo = np.asarray(lo, dtype=np.float64).copy()
        hi = np.maximum(np.asarray(hi, dtype=np.float64), lo).copy()
        # Invariant: the case pays at lo (else the answer is lo) and not at hi (or hi is the cap).
        done = ~pays(lo) | (hi <= lo)
        out = np.where(done, lo, hi)
        active = ~done & (hi - lo > 1)
        while active.any():
            mid = np.floor((lo + hi) / 2)
            good = pays(mid)
            lo = np.where(active & good, mid, lo)
            hi = np.where(active & ~good, mid, hi)
            active = active & (hi - lo > 1)
        return np.where(done, out, hi)

    def fill_rate_level(self, fill_rate: np.ndarray, cycle_demand: np.ndarray) -> np.ndarray:
        """Smallest integer S with expected shortage L(S) <= (1 - fill rate) * cycle demand."""
        fr = np.broadcast_to(np.asarray(fill_rate, dtype=np.float64), self.mean.shape)
        allowed = (1.0 - fr) * np.maximum(np.asarray(cycle_demand, dtype=np.float64), 0.0)
        lo = np.zeros(len(self.mean))  # L(lo) may exceed allowed
        hi = np.ceil(self.csl_level(np.full(len(self.mean), 0.9999)) + self.mean + 1.0)
        ok_hi = self.loss(hi) <= allowed + 1e-12
        # A bound that still fails (heavy tail): widen until it holds.
        for _ in range(30):
            if ok_hi.all():
                break
            hi = np.where(ok_hi, hi, hi * 2 + 1)
            ok_hi = self.loss(hi) <= allowed + 1e-12
        ok_lo = self.loss(lo) <= allowed + 1e-12
        result = np.where(ok_lo, lo, hi)
        lo_, hi_ = lo.copy(), hi.copy()
        active = ~ok_lo
        # Integer bisection on the decreasing loss function: invariant loss(lo) > allowed >= loss(hi).
        while active.any():
            mid = np.floor((lo_ + hi_) / 2)
            good = self.loss(mid) <= allowed + 1e-12
            hi_ = np.where(active & good, mid, hi_)
            lo_ = np.where(active & ~good, mid, lo_)
            active = active & (hi_ - lo_ > 1)
        return np.where(ok_lo, result, hi_)


def _upper_area(q: np.ndarray, tail: np.ndarray) -> np.ndarray:
    area = _TAIL_MASS * tail
    for k in range(1, 5):
        area = area + (q[:, k] - q[:, k - 1]) * ((1 - _KNOT_P[k]) + (1 - _KNOT_P[k + 1])) / 2
    return area


def _continuous_loss(knots: np.ndarray, tail: np.ndarray, x: np.ndarray) -> np.ndarray:
    expand = x.ndim == 2
    kn = knots[:, None, :] if expand else knots
    t_ = tail[:, None] if expand else tail
    out = np.maximum(kn[..., 0] - x, 0.0)
    for k in range(5):
        a, b = kn[..., k], kn[..., k + 1]
        sa, sb = 1 - _KNOT_P[k], 1 - _KNOT_P[k + 1]
        t = np.clip(x, a, b)
        width = b - a
        frac = np.divide(t - a, width, out=np.zeros(np.broadcast_shapes(t.shape, a.shape)), where=width > 0)
        st = sa + (sb - sa) * frac
        out = out + (b - t) * (st + sb) / 2
    top = kn[..., 5]
    safe = np.where(t_ > 0, t_, 1.0)
    out = out + np.where(t_ > 0, _TAIL_MASS * t_ * np.exp(-(np.maximum(x, top) - top) / safe), 0.0)
    return out


def _continuous_quantile(knots: np.ndarray, tail: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.empty(len(p))
    for i in range(5):
        lo, hi = _KNOT_P[i], _KNOT_P[i + 1]
        m = (p >= lo) & (p <= hi)
        frac = (p[m] - lo) / (hi - lo)
        out[m] = knots[m, i] + frac * (knots[m, i + 1] - knots[m, i])
    m = p > _KNOT_P[-1]
    out[m] = knots[m, 5] + tail[m] * np.log(_TAIL_MASS / np.maximum(1 - p[m], 1e-12))
    return out


def _nb_p(mean: np.ndarray, n: np.ndarray) -> np.ndarray:
    return n / (n + np.maximum(mean, 1e-12))


def _sf(k: np.ndarray, mean: np.ndarray, n: np.ndarray) -> np.ndarray:
    """P(D > k) for Poisson (n = inf) or negative binomial rows, at integer k >= 0.

    Through the regularised incomplete gamma / beta functions (the same identities scipy.stats
    uses) called as plain ufuncs: the stats layer's argument handling costs more than the maths
    when there are millions of points."""
    shape = np.broadcast_shapes(k.shape, mean.shape, n.shape)
    kb = np.broadcast_to(k, shape)
    mb = np.broadcast_to(mean, shape)
    nb = np.broadcast_to(n, shape)
    out = np.zeros(shape)
    pois = np.isinf(nb)
    if pois.any():
        out[pois] = special.gammainc(kb[pois] + 1.0, mb[pois])
    q = ~pois
    if q.any():
        n_q, m_q = nb[q], mb[q]
        # P(D > k) = I_{1-p}(k + 1, n) with p = n / (n + mean).
        out[q] = special.betainc(kb[q] + 1.0, n_q, m_q / (n_q + np.maximum(m_q, 1e-300)))
    return out


def _discrete_loss(mean: np.ndarray, n: np.ndarray, x: np.ndarray) -> np.ndarray:
    # E[(D-x)+] = E[D; D > x] - x P(D > x), and for these families
    # E[D; D > x] = mean * P(D' >= x) where D' is Poisson (same mean) or NB(n + 1, p).
    if x.ndim == 2:
        mean, n = mean[:, None], n[:, None]
    lo = np.floor(x)
    frac = x - lo

    def at(k: np.ndarray) -> np.ndarray:
        kk = np.maximum(k, 0.0)
        mean_b = np.broadcast_to(mean, kk.shape)
        n_b = np.broadcast_to(n, kk.shape)
        inf = np.isinf(n_b)
        # D' has the same p as D and size n + 1, so its mean is mean * (n + 1) / n.
        n1 = np.where(inf, n_b, n_b + 1.0)
        mean1 = mean_b * np.where(inf, 1.0, n1 / np.where(inf, 1.0, np.maximum(n_b, 1e-300)))
        # P(D' >= k) = P(D' > k - 1), which is 1 for k = 0.
        tail_d = np.where(kk >= 1, _sf(np.maximum(kk - 1, 0.0), mean1, n1), 1.0)
        val = mean_b * tail_d - kk * _sf(kk, mean_b, n_b)
        return val + np.maximum(-k, 0.0)

    l0 = at(lo)
    if not frac.any():
        return np.maximum(l0, 0.0)
    l1 = at(lo + 1)
    # Between integers the loss of an integer-valued D is linear.
    return np.maximum(l0 + (l1 - l0) * frac, 0.0)


def _discrete_ppf(p: np.ndarray, mean: np.ndarray, n: np.ndarray) -> np.ndarray:
    out = np.empty(len(p))
    pois = np.isinf(n)
    out[pois] = stats.poisson.ppf(p[pois], mean[pois])
    q = ~pois
    out[q] = stats.nbinom.ppf(p[q], n[q], _nb_p(mean[q], n[q]))
    return np.nan_to_num(out, nan=0.0)
