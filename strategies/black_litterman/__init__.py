"""Black-Litterman: a prior of expected returns blended with the investor's views, then
allocated by the mean-variance solvers of :mod:`strategies.mpt`.

* :mod:`strategies.black_litterman.posterior`: the model on arrays (implied prior, omega, the
  posterior mean and covariance; a numba kernel and its NumPy twin);
* :mod:`strategies.black_litterman.strategy`: :class:`BlackLittermanStrategy`, the allocator
  (config name ``black_litterman``);
* views by symbol are parsed and resolved by :mod:`strategies.views`.

Formulas, parameters, a TOML example and the PyPortfolioOpt settings they match:
docs/allocators.md, "Black-Litterman".
"""

from strategies.black_litterman.posterior import (
    ZERO_CONFIDENCE_OMEGA,
    default_omega,
    idzorek_omega,
    implied_prior,
    posterior_mean_nb,
    posterior_moments,
)
from strategies.black_litterman.strategy import (
    BL_OBJECTIVES,
    OMEGA_METHODS,
    PRIORS,
    BlackLittermanStrategy,
)

__all__ = [
    "BL_OBJECTIVES",
    "OMEGA_METHODS",
    "PRIORS",
    "ZERO_CONFIDENCE_OMEGA",
    "BlackLittermanStrategy",
    "default_omega",
    "idzorek_omega",
    "implied_prior",
    "posterior_mean_nb",
    "posterior_moments",
]
