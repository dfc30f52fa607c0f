"""Learning time scales of a slow first layer (docs/fastslow.md, "Slow first layer"): the
times t_k at which each risk component R_k falls below a fraction of its start, from the full
flow and predicted by the slow flow on the critical manifold a*(s), and their scaling with eps.

    python -m experiments.timescales validate [--eps 1e-4 1e-5] [--quick]
    python -m experiments.timescales sweep [--eps 1e-3 3e-4 1e-4 ...] [--quick]

`validate` prints, per case and eps, the slow flow's T_k against eps t_k of the full flow;
`sweep` fits log t_k against log eps over the given eps (>= 3 decades by default) and
compares the slope with the slow flow's prediction, -1 for a component the first layer's
motion learns (t_k = T_k/eps + O(1)) and 0 for one the fast fit learns.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import jax
import numpy as np

import fsjax
from fsjax import MeanField, hermite, learning_times, predicted_times

TOL = {"rtol": 1e-10, "atol": 1e-12}
SOLVER = fsjax.solvers.make_solver("rodas5p", **TOL)
FRACTION = 0.1


@dataclass(frozen=True)
class Case:
    name: str
    activation: str
    order: int
    target: tuple
    a0: float
    s0: tuple
    T_final: float  # slow time the runs cover

    def model(self, eps: float) -> MeanField:
        mu = hermite.coefficients(self.activation, self.order)
        return MeanField(np.asarray(self.target), mu, 0.0, *fsjax.layer_rates("first_layer", eps))

    def particles(self):
        s0 = np.asarray(self.s0, dtype=float)
        return np.full_like(s0, self.a0), s0


RELU, ERF = hermite.coefficients("relu", 4), hermite.coefficients("erf", 5)
# Every component the activation can learn is in the targets (ReLU: mu_3 = 0, so c_3 = 0;
# erf: odd orders only), and few distinct particles against them, so that the fit at the start
# leaves components that only the first layer's motion can learn. "teacher": one neuron of
# the same activation, c_k = mu_k (learned at s = 1). "one group": ten equal particles, a
# degenerate start (coincident alignments) that must give the m = 1 times.
CASES = [
    Case("relu m=1", "relu", 4, (0.2, 0.6, 0.5, 0.0, 0.3), 0.1, (0.05,), 30.0),
    Case("relu m=1 teacher", "relu", 4, tuple(RELU), 0.1, (0.05,), 30.0),
    Case("relu m=10 teacher, one group", "relu", 4, tuple(RELU), 0.1, (0.05,) * 10, 30.0),
    Case("erf m=1 teacher", "erf", 5, tuple(ERF), 0.1, (0.05,), 30.0),
    Case("relu m=2", "relu", 4, (0.2, 0.6, 0.5, 0.0, 0.3), 0.1, (0.05, -0.1), 30.0),
    Case("relu m=10, two groups", "relu", 4, (0.2, 0.6, 0.5, 0.0, 0.3), 0.1,
         (0.05,) * 5 + (-0.1,) * 5, 30.0),
]  # fmt: skip


SEPARATED = ("relu m=1", "relu m=1 teacher", "erf m=1 teacher")


def full_times(case: Case, eps: float, n: int):
    """t_k of the full flow (start: the network's initial components) on n log-spaced saves."""
    model = case.model(eps)
    a0, s0 = case.particles()
    ts = np.geomspace(1e-3, case.T_final / eps, n)
    traj = fsjax.solve(model, a0, s0, ts, solver=SOLVER, max_steps=400_000, **TOL)
    comp = np.asarray(jax.vmap(model.risk_components)(traj.a, traj.s))
    start = np.asarray(model.risk_components(a0, s0))
    return learning_times(ts, comp, FRACTION, start), ts, comp


def slow_times(case: Case, n: int):
    a0, s0 = case.particles()
    T = np.geomspace(1e-5, case.T_final, n)
    return predicted_times(case.model(1e-4), a0, s0, T, FRACTION)


def validate(eps_list, n: int):
    print("| case | eps | k | slow T_k | full eps t_k | rel. diff | max separation | degeneracy |")
    print("|---|---|---|---|---|---|---|---|")
    for case in CASES:
        T_k, slow = slow_times(case, n)
        for eps in eps_list:
            t_k, _, _ = full_times(case, eps, n)
            for k in np.nonzero(np.isfinite(T_k) & (T_k > 0))[0]:
                rel = eps * t_k[k] / T_k[k] - 1
                print(
                    f"| {case.name} | {eps:.0e} | {k} | {T_k[k]:.5g} | {eps * t_k[k]:.5g} | "
                    f"{rel:+.2e} | {eps * np.nanmax(slow.separation) / 1e-4:.2e} | "
                    f"{slow.degeneracy or 'none'} |"
                )


def sweep(eps_list, n: int):
    eps = np.asarray(eps_list, dtype=float)
    print("| case | k | slow T_k | eps t_k at each eps | fitted exponent | predicted | diff |")
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        T_k, _ = slow_times(case, n)
        t = np.stack([full_times(case, e, n)[0] for e in eps])
        for k in np.nonzero(np.isfinite(T_k))[0]:
            slope = np.polyfit(np.log(eps), np.log(t[:, k]), 1)[0]
            predicted = -1.0 if T_k[k] > 0 else 0.0
            cells = ", ".join(f"{x:.4g}" for x in eps * t[:, k])
            print(
                f"| {case.name} | {k} | {T_k[k]:.5g} | {cells} | {slope:.4f} | "
                f"{predicted:.0f} | {slope - predicted:+.4f} |"
            )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["validate", "sweep"])
    parser.add_argument("--eps", type=float, nargs="+")
    parser.add_argument("--quick", action="store_true", help="one case, coarse grids")
    args = parser.parse_args(argv)
    n = 200 if args.quick else 1200
    if args.quick:
        CASES[1:] = []
    if args.part == "validate":
        validate(args.eps or [1e-4, 1e-5], n)
    else:
        # The separated cases only (validate: the others do not follow their slow flow).
        CASES[:] = [c for c in CASES if c.name in SEPARATED or args.quick]
        sweep(args.eps or [1e-3, 1e-4, 1e-5, 1e-6], n)


if __name__ == "__main__":
    main()
