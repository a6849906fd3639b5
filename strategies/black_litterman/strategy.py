"""``BlackLittermanStrategy``: the posterior of :mod:`strategies.black_litterman.posterior`
allocated by :meth:`strategies.mpt.MPTStrategy.allocate_moments` (its solvers, covariance repair,
limits and fallback chain), with views and priors by symbol resolved against the market and
restricted to each universe."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from strategies.base import (
    Allocation,
    BaseAllocator,
    Constraints,
    check_choice,
    validate_returns,
)
from strategies.black_litterman.posterior import (
    default_omega,
    idzorek_omega,
    implied_prior,
    posterior_mean_nb,
    posterior_moments,
)
from strategies.errors import ViewError
from strategies.estimators import COVARIANCE_METHODS, CovarianceMethod, covariance
from strategies.mpt import MPTStrategy
from strategies.views import Views, check_views, resolve_views

Prior = Literal["equal", "zero"]
PRIORS: tuple[str, ...] = get_args(Prior)
OmegaMethod = Literal["default", "idzorek"]
OMEGA_METHODS: tuple[str, ...] = get_args(OmegaMethod)
BLObjective = Literal["max_sharpe", "max_utility"]
BL_OBJECTIVES: tuple[str, ...] = get_args(BLObjective)


@functools.lru_cache(maxsize=64)
def _optimiser(
    risk_free_rate: float,
    lookback_days: float,
    objective: str,
    periods_per_year: float,
    covariance: str,
    span: float,
    fallback: tuple[str, ...],
    risk_aversion: float,
) -> MPTStrategy:
    """The :class:`MPTStrategy` that allocates a posterior (built once per parameter set:
    its checks cost more than a small posterior). Read-only: shared between strategies."""
    return MPTStrategy(
        risk_free_rate=risk_free_rate,
        lookback_days=lookback_days,
        objective=objective,  # type: ignore[arg-type]
        periods_per_year=periods_per_year,
        covariance=covariance,  # type: ignore[arg-type]
        span=span,
        fallback=fallback,
        risk_aversion=risk_aversion,
    )


@dataclass
class BlackLittermanStrategy(BaseAllocator):
    """Black-Litterman expected returns, allocated by max Sharpe or max utility.

    Parameters
    ----------
    views : mapping of str to float, or Views, optional
        Expected annual returns of view portfolios by symbol (``{"BTC/USDT": 0.3,
        "ETH/USDT - SOL/USDT": 0.05}``, grammar in :mod:`strategies.views`), or by index
        (:class:`~strategies.views.Views`). None: the posterior is the prior.
    view_confidences : sequence of float or mapping of str to float, optional
        Idzorek confidences in [0, 1], one per view (in the views' order, or by expression).
    omega : {"default", "idzorek"}, optional
        The views' uncertainty: ``diag(tau P S P')``, or from ``view_confidences``; by default
        ``"idzorek"`` when confidences are given, else ``"default"``.
    tau : float
        The prior's uncertainty relative to the returns' covariance, in (0, 1].
    prior : {"equal", "zero"}, optional
        ``"equal"`` (the default when no prior is given): the returns implied by equal weights,
        ``risk_aversion * S 1/n + risk_free_rate``; ``"zero"``: 0 for every asset.
    prior_returns : sequence of float or mapping of str to float, optional
        The prior itself (annualised), by symbol (every symbol of the data) or one per asset.
    prior_weights : sequence of float or mapping of str to float, optional
        Positive weights (e.g. market capitalisations) whose implied returns are the prior,
        by symbol (every symbol) or one per asset; normalised over each universe.
    risk_aversion : float
        ``delta`` of the implied prior; also ``gamma`` of ``objective="max_utility"``.
    objective : {"max_sharpe", "max_utility"}
    risk_free_rate : float
        Annual; added to an implied prior and subtracted by max Sharpe.
    lookback_days, periods_per_year, span : float
        As :class:`~strategies.mpt.MPTStrategy`.
    covariance : {"sample", "ewma", "ledoit_wolf", "oas", "denoised", "detoned"}
        The estimator of ``S``.
    posterior_covariance : bool
        Optimise with the posterior covariance instead of ``S``.
    fallback : sequence of str
        As :class:`~strategies.mpt.MPTStrategy`.

    Notes
    -----
    ``prior``, ``prior_returns`` and ``prior_weights`` are alternatives. Parameters by symbol
    are resolved against the market's symbols by :meth:`for_symbols` (the engine calls it);
    in a universe without one of a view's symbols (not listed yet), the view is dropped with a
    note. ``Allocation.extras`` adds ``prior_returns`` to :class:`~strategies.mpt.MPTStrategy`'s
    (whose ``expected_returns`` is the posterior mean).

    Examples
    --------
    >>> returns = np.random.default_rng(0).normal(0.001, 0.03, size=(120, 3))
    >>> bl = BlackLittermanStrategy(views={"A": 0.5, "B - C": 0.1}, view_confidences=[0.6, 0.4])
    >>> bl.posterior(returns, symbols=["A", "B", "C"]).round(4).tolist()
    [0.3653, 0.1475, 0.0946]
    >>> bool(bl.for_symbols(["A", "B", "C"]).allocate(returns, {"max_weight": 0.5}).max() <= 0.5)
    True
    """

    views: Mapping[str, float] | Views | None = None
    view_confidences: Sequence[float] | Mapping[str, float] | None = None
    omega: OmegaMethod | None = None
    tau: float = 0.05
    prior: Prior | None = None
    prior_returns: Sequence[float] | Mapping[str, float] | None = None
    prior_weights: Sequence[float] | Mapping[str, float] | None = None
    risk_aversion: float = 1.0
    objective: BLObjective = "max_sharpe"
    risk_free_rate: float = 0.02
    lookback_days: float = 30
    periods_per_year: float = 365.0
    covariance: CovarianceMethod = "sample"
    span: float = 60.0
    posterior_covariance: bool = False
    fallback: Sequence[str] = ("min_volatility", "hrp", "previous")
    name: ClassVar[str] = "black_litterman"

    def __post_init__(self) -> None:
        check_choice("objective", self.objective, BL_OBJECTIVES)
        check_choice("covariance", self.covariance, COVARIANCE_METHODS)
        if self.omega is not None:
            check_choice("omega", self.omega, OMEGA_METHODS)
        if self.prior is not None:
            check_choice("prior", self.prior, PRIORS)
        if isinstance(self.tau, bool) or not (
            isinstance(self.tau, int | float) and 0 < self.tau <= 1
        ):
            raise ValueError(
                f"`tau` must be in (0, 1]; got {self.tau!r} (the prior's uncertainty relative to "
                "the covariance; 0.05 is usual)"
            )
        check_views(self.views)
        self._check_confidences()
        self._check_prior()
        self._optimiser()  # checks the rest (fallback, risk_aversion, periods_per_year, ...)

    def _check_confidences(self) -> None:
        conf, views = self.view_confidences, self.views
        if conf is None:
            if self.omega == "idzorek":
                raise ValueError(
                    "`omega` = 'idzorek' needs `view_confidences`, one in [0, 1] per view"
                )
            return
        if views is None:
            raise ValueError("`view_confidences` are given but there are no `views`")
        if self.omega == "default":
            raise ValueError(
                "`view_confidences` set the uncertainty of omega = 'idzorek'; drop them or "
                "drop omega = 'default'"
            )
        n_views = views.n_views if isinstance(views, Views) else len(views)
        if isinstance(conf, Mapping):
            if isinstance(views, Views):
                raise ValueError(
                    "`view_confidences` by expression need `views` by expression; give one "
                    "per row of Views.P instead"
                )
            missing, extra = set(views) - set(conf), set(conf) - set(views)
            if missing or extra:
                raise ValueError(
                    f"`view_confidences` must name each view once; missing {sorted(missing)}, "
                    f"not a view {sorted(extra)}"
                )
            values = [conf[e] for e in views]
        else:
            values = list(conf)
            if len(values) != n_views:
                raise ValueError(
                    f"`view_confidences` must have one entry per view ({n_views}); got {len(values)}"
                )
        if not all(isinstance(c, int | float) and 0 <= c <= 1 for c in values):
            raise ValueError(f"`view_confidences` must be numbers in [0, 1]; got {conf!r}")

    def _check_prior(self) -> None:
        given = [
            k for k in ("prior", "prior_returns", "prior_weights") if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"`prior`, `prior_returns` and `prior_weights` are alternatives; got {' and '.join(given)}"
            )
        for name, positive in (("prior_returns", False), ("prior_weights", True)):
            value = getattr(self, name)
            if value is None:
                continue
            values = list(value.values()) if isinstance(value, Mapping) else value
            try:
                arr = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                arr = np.array([np.nan])
            bad = arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr))
            if bad or (positive and np.any(arr <= 0)):
                must = "finite and > 0" if positive else "finite numbers"
                raise ValueError(f"`{name}` entries must be {must}; got {value!r}")

    def _optimiser(self) -> MPTStrategy:
        if isinstance(self.fallback, str):  # MPTStrategy names the mistake
            return MPTStrategy(fallback=self.fallback)
        return _optimiser(
            self.risk_free_rate,
            self.lookback_days,
            self.objective,
            self.periods_per_year,
            self.covariance,
            self.span,
            tuple(self.fallback),
            self.risk_aversion,
        )

    @property
    def uses_previous(self) -> bool:
        """As :class:`~strategies.mpt.MPTStrategy`: max utility reads the book."""
        return self.objective == "max_utility"

    # ---------------------------------------------------------------- parameters by symbol
    def for_symbols(self, symbols: Sequence[str]) -> BlackLittermanStrategy:
        """Views, confidences and priors by symbol resolved against ``symbols`` (the market's
        assets, in order): views to :class:`~strategies.views.Views`, the rest to one entry
        per asset. An unknown symbol is a :class:`~strategies.errors.ViewError` / ``ValueError``
        naming the closest one."""
        symbols = [str(s) for s in symbols]
        changes: dict[str, Any] = {}
        if isinstance(self.views, Mapping):
            changes["views"] = resolve_views(self.views, symbols)
            if isinstance(self.view_confidences, Mapping):
                changes["view_confidences"] = tuple(
                    float(self.view_confidences[e]) for e in self.views
                )
        elif isinstance(self.views, Views) and self.views.n_assets != len(symbols):
            raise ViewError(
                f"`views` has {self.views.n_assets} columns but the data has {len(symbols)} symbols"
            )
        for name in ("prior_returns", "prior_weights"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                changes[name] = _per_symbol(name, value, symbols)
        return dataclasses.replace(self, **changes) if changes else self

    def for_universe(self, members: np.ndarray, n_assets: int) -> BlackLittermanStrategy:
        """Views with a leg outside ``members`` dropped (noted), priors of the market's assets
        restricted to ``members``."""
        changes: dict[str, Any] = {}
        views, conf = self.views, self.view_confidences
        if isinstance(views, Views) and views.n_assets == n_assets:
            keep = views.kept(members)
            changes["views"] = views.restrict(members)
            if conf is not None and not isinstance(conf, Mapping):
                changes["view_confidences"] = tuple(float(conf[int(i)]) for i in keep)
        for name in ("prior_returns", "prior_weights"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping) and len(value) == n_assets:
                changes[name] = tuple(float(value[int(j)]) for j in members)
        return dataclasses.replace(self, **changes) if changes else self

    # --------------------------------------------------------------------------- the model
    def posterior(
        self, returns: Any, symbols: Sequence[str] | None = None, *, return_cov: bool = False
    ) -> Any:
        """The posterior expected returns (annualised) of the window ``returns``.

        Parameters
        ----------
        returns : ndarray of shape (n_obs, n_assets) or DataFrame
            Simple returns (a DataFrame's columns are its symbols).
        symbols : sequence of str, optional
            The assets' names: resolves views and priors by symbol, and labels the result.
        return_cov : bool
            Also return the posterior covariance.

        Returns
        -------
        Series or ndarray of shape (n_assets,), or a pair with a DataFrame / ndarray of shape
        (n_assets, n_assets)
            pandas objects when symbols are known, else arrays.
        """
        if symbols is None and hasattr(returns, "columns"):
            symbols = [str(c) for c in returns.columns]
        arr = validate_returns(returns, symbols)
        model = self if symbols is None else self.for_symbols(symbols)
        _, _, mean, post = model._moments(arr, return_cov)
        return _labelled(mean, post, symbols, return_cov)

    def posterior_from_covariance(
        self, cov: Any, symbols: Sequence[str] | None = None, *, return_cov: bool = False
    ) -> Any:
        """The posterior for a given annualised covariance (your own estimate), as
        PyPortfolioOpt's ``BlackLittermanModel(cov, ...)`` takes it; otherwise as
        :meth:`posterior`.

        Parameters
        ----------
        cov : ndarray or DataFrame of shape (n_assets, n_assets)
            Annualised, symmetric (a DataFrame's columns are its symbols).
        symbols : sequence of str, optional
        return_cov : bool

        Examples
        --------
        >>> bl = BlackLittermanStrategy(views={"A - B": 0.1}, prior="zero")
        >>> bl.posterior_from_covariance(np.diag([0.04, 0.09]), ["A", "B"]).round(4).tolist()
        [0.0154, -0.0346]
        """
        if symbols is None and hasattr(cov, "columns"):
            symbols = [str(c) for c in cov.columns]
        S = np.ascontiguousarray(cov, dtype=np.float64)
        if S.ndim != 2 or S.shape[0] != S.shape[1] or not np.all(np.isfinite(S)):
            raise ValueError(
                f"`cov` must be a finite square matrix (n_assets, n_assets); got shape {S.shape}"
            )
        model = self if symbols is None else self.for_symbols(symbols)
        _, _, mean, post = model._posterior_of(S, return_cov)
        return _labelled(mean, post, symbols, return_cov)

    def _moments(
        self, returns: np.ndarray, with_cov: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``(prior, S, posterior mean, posterior covariance or None)`` of one window."""
        cov = covariance(returns, self.covariance, self.periods_per_year, self.span)
        return self._posterior_of(cov, with_cov)

    def _posterior_of(
        self, cov: np.ndarray, with_cov: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``(prior, S, posterior mean, posterior covariance or None)`` for the covariance ``S``."""
        pi = self._prior(cov)
        views = self._views(cov.shape[0])
        conf = np.asarray(
            () if self.view_confidences is None else self.view_confidences, dtype=np.float64
        )
        idzorek = self.view_confidences is not None
        if idzorek and conf.shape != (views.n_views,):
            idzorek_omega(cov, views.P, self.tau, conf)  # raises, naming the mismatch
        mean, ok = posterior_mean_nb(cov, pi, views.P, views.Q, conf, self.tau, idzorek)
        post = None
        if with_cov or not ok:  # the NumPy twin: the covariance, or a singular system
            omega = (
                idzorek_omega(cov, views.P, self.tau, conf)
                if idzorek
                else default_omega(cov, views.P, self.tau)
            )
            twin, post = posterior_moments(
                cov, pi, views.P, views.Q, omega, self.tau, with_cov=with_cov
            )
            mean = mean if ok else twin
        return pi, cov, mean, post

    def _prior(self, cov: np.ndarray) -> np.ndarray:
        n = cov.shape[0]
        if self.prior == "zero":
            return np.zeros(n)
        if self.prior_returns is not None:
            return self._per_asset("prior_returns", n).copy()
        weights = (
            np.full(n, 1.0 / n)
            if self.prior_weights is None
            else self._per_asset("prior_weights", n)
        )
        return implied_prior(cov, weights, self.risk_aversion, self.risk_free_rate)

    def _per_asset(self, name: str, n: int) -> np.ndarray:
        value = getattr(self, name)
        if isinstance(value, Mapping):
            raise ValueError(
                f"`{name}` by symbol needs the market's symbols: run it through run_backtest / "
                "the CLI, pass symbols to posterior(), or call for_symbols(symbols) first"
            )
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (n,):
            raise ValueError(f"`{name}` must have one entry per asset ({n}); got {arr.size}")
        return arr

    def _views(self, n: int) -> Views:
        views = self.views
        if views is None:
            return Views(np.zeros((0, n)), np.zeros(0))
        if isinstance(views, Mapping):
            raise ValueError(
                "`views` by symbol need the market's symbols: run it through run_backtest / "
                "the CLI, pass symbols to posterior(), or call for_symbols(symbols) first"
            )
        if views.n_assets != n:
            raise ViewError(f"`views` has {views.n_assets} columns but the window has {n} assets")
        return views

    def _allocate(
        self, returns: np.ndarray, constraints: Constraints, previous: np.ndarray | None
    ) -> Allocation:
        pi, cov, mean, post = self._moments(returns, self.posterior_covariance)
        used = cov if post is None else post
        result = self._optimiser().allocate_moments(mean, used, returns, constraints, previous)
        dropped = self.views.dropped if isinstance(self.views, Views) else ()
        extras = {**result.extras, "prior_returns": pi}
        return Allocation(result.weights, result.method, (*dropped, *result.notes), extras)

    def allocate_frame(
        self, returns: Any, constraints: Constraints | Mapping[str, Any] | None = None
    ) -> Any:
        """pandas wrapper: views and priors by symbol are resolved against the columns."""
        resolved = self.for_symbols([str(c) for c in returns.columns])
        return BaseAllocator.allocate_frame(resolved, returns, constraints)


def _labelled(
    mean: np.ndarray, post: np.ndarray | None, symbols: Sequence[str] | None, with_cov: bool
) -> Any:
    """The posterior as arrays, or as a Series (and DataFrame) labelled by ``symbols``."""
    if symbols is None:
        return (mean, post) if with_cov else mean
    import pandas as pd

    names = list(symbols)
    series = pd.Series(mean, index=names, name="posterior_returns")
    if not with_cov:
        return series
    return series, pd.DataFrame(post, index=names, columns=names)


def _per_symbol(name: str, value: Mapping[str, float], symbols: list[str]) -> tuple[float, ...]:
    """One entry of ``value`` per symbol of ``symbols``; every symbol must be named."""
    unknown = [s for s in value if s not in set(symbols)]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), symbols, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"`{name}` names {unknown}, which the data does not have{hint}; its symbols are "
            f"{', '.join(symbols[:8])}{', ...' if len(symbols) > 8 else ''}"
        )
    missing = [s for s in symbols if s not in value]
    if missing:
        raise ValueError(
            f"`{name}` must give every symbol of the data; missing {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}"
        )
    return tuple(float(value[s]) for s in symbols)


__all__ = ["BL_OBJECTIVES", "OMEGA_METHODS", "PRIORS", "BlackLittermanStrategy"]
