"""The tiered band's margin in calibration percentiles: the per-request pure-Python interpolation
equals numpy's ``interp`` everywhere, flat steps and the ends included."""

from __future__ import annotations

import numpy as np

from routers.encoders.tiered import percentile_margin


def test_percentile_margin_matches_numpy_interp():
    rng = np.random.default_rng(0)
    cdf = np.maximum.accumulate(np.sort(rng.uniform(0.3, 0.8, 101)))
    cdf[40:45] = cdf[40]  # a flat step, as quantiles of a narrow score have
    levels = np.linspace(0, 1, len(cdf))
    for x, t in rng.uniform(0.2, 0.9, (500, 2)).tolist() + [(cdf[40], 0.5), (0.0, 1.0), (cdf[0], cdf[-1])]:
        want = abs(np.interp(x, cdf, levels) - np.interp(t, cdf, levels))
        assert abs(percentile_margin(x, t, tuple(cdf.tolist())) - want) < 1e-9
        assert abs(percentile_margin(x, t, cdf) - want) < 1e-9
