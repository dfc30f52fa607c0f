"""fsjax against the tools users would otherwise pick, side by side in one process.

    python -m benchmarks run [--quick] [--gpu] [--out DIR] [--results-md PATH]

Sections (see each peers_*.py for what is compared and how):
- ode: the reduced ODE, single trajectories over eps (stiffness) and m (particles), and sweeps,
  fsjax against scipy Radau/BDF/LSODA and SUNDIALS CVODE at matched accuracy: every tool runs
  a ladder of tolerances, and each peer setting is compared with the cheapest fsjax setting
  whose error against the tight reference is equal or smaller.
- network: one SGD step, fsjax against a plain PyTorch loop and the matmul rate.
- sensitivity: the gradient of t_onset against its forward solve.
- gpu: sweep throughput to 1e6 points, step rate against the matmul rate, compile times (only
  with --gpu on a machine with a GPU; otherwise reported as not measured).

Prints the tables, writes `<out>/<host>-<date>.json` and rewrites this run's section of
benchmarks/RESULTS.md. `--quick` is a smoke test of the whole pipeline (about a minute on two
cores); its numbers are not comparisons.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import fsjax

from . import _harness as h
from . import peers_network as pn
from . import peers_ode as po
from . import peers_sensitivity as ps

HERE = Path(__file__).parent


@dataclasses.dataclass(frozen=True)
class Plan:
    eps: tuple = (1.0, 1e-2, 1e-4, 1e-6)
    particles: tuple = (1, 16, 64)
    # From big_m particles on: CVODE reference, no Radau, fewer fsjax tolerances, 1 repeat.
    big_m: int = 64
    big_fsjax_rtols: tuple = (1e-6, 1e-8)
    particle_eps: float = 1e-2
    peer_rtols: tuple = (1e-6, 1e-8)
    fsjax_rtols: tuple = (1e-6, 1e-8, 1e-10, 1e-12)
    sweep_eps: float = 1e-3
    sweep_match_points: int = 256
    sweep_subset: int = 6
    sweep_points: tuple = (100, 1000, 10_000)
    sweep_chunk: int = 1000
    scaling_rtol: float = 1e-8
    engine_points: int = 1000
    network_sizes: tuple = ((256, 128, 4096), (1024, 256, 4096), (1024, 512, 4096))
    network_flop: float = 3e10
    sensitivity_batch: int = 64
    sensitivity_config: bool = True
    repeats: int = 3
    gpu_points: tuple = (10_000, 100_000, 1_000_000)
    gpu_chunk: int = 1 << 17
    gpu_network_sizes: tuple = ((4096, 1024, 16384), (8192, 2048, 32768))
    gpu_network_flop: float = 1e13


QUICK = Plan(
    eps=(1.0,),
    particles=(2,),
    particle_eps=1.0,
    peer_rtols=(1e-6,),
    fsjax_rtols=(1e-6,),
    sweep_eps=1.0,
    sweep_match_points=8,
    sweep_subset=1,
    sweep_points=(),
    engine_points=0,
    network_sizes=((32, 16, 64),),
    network_flop=1e7,
    sensitivity_batch=0,
    sensitivity_config=False,
    repeats=2,
)


def ode_group(section, case, p: po.Problem, plan: Plan, rows: list):
    """One problem, every tool at every tolerance of the plan; from `plan.big_m` particles on,
    a reduced set (see `Plan`)."""
    h.log(f"{section} {case}")
    m = p.a0.size
    big = m >= plan.big_m
    ref_tool = "CVODE" if big and po.CVODE is not None else "Radau"
    ref = po.reference(p, ref_tool)
    sizes = {"eps": p.eps, "m": m, "t_final": float(p.ts[-1]), "n_save": p.ts.size}
    sizes["reference"] = f"{ref_tool} rtol {po.REFERENCE_RTOL:g}"
    args = (p.c3, p.eps, jnp.asarray(p.a0), jnp.asarray(p.s0), jnp.asarray(p.ts))
    fs_rtols = plan.big_fsjax_rtols if big else plan.fsjax_rtols
    variants = [("fsjax Kvaerno5", r, po.fsjax_solver) for r in fs_rtols]
    repeats = 1 if big else plan.repeats
    for tool, rtol, make in variants:
        fn = make(rtol, batched=False)
        compile_s, out = h.first_call(lambda: jax.block_until_ready(fn(*args)))  # noqa: B023
        timing = h.measure(lambda: jax.block_until_ready(fn(*args)), repeats)  # noqa: B023
        rows.append(
            h.Row(
                section,
                case,
                tool,
                timing,
                1 / timing.median,
                "solves/s",
                po.error(out[0], out[1], ref),
                sizes | {"rtol": rtol},
                f"steps {int(out[3])}, first call {compile_s:.2g} s",
            )
        )
    for tool in po.peer_tools():
        if big and tool == "Radau":
            rows.append(
                h.Row(section, case, tool, None, note=f"not measured: ~30 s a solve at m={m}")
            )
            continue
        for rtol in plan.peer_rtols:
            _, out = h.first_call(lambda: po.peer_solve(tool, p, rtol))  # noqa: B023
            timing = h.measure(lambda: po.peer_solve(tool, p, rtol), 1 if big else 2)  # noqa: B023
            rows.append(
                h.Row(
                    section,
                    case,
                    tool,
                    timing,
                    1 / timing.median,
                    "solves/s",
                    po.error(out[0], out[1], ref),
                    sizes | {"rtol": rtol},
                )
            )


def matched(rows: list[h.Row]) -> None:
    """Annotate each peer row with its speed ratio to the cheapest fsjax row of the same case
    that is at least as accurate."""
    for r in rows:
        if r.tool.startswith("fsjax") or r.error is None or r.rate is None:
            continue
        same = [
            f
            for f in rows
            if f.tool.startswith("fsjax")
            and (f.section, f.case) == (r.section, r.case)
            and f.error is not None
            and f.error <= r.error
        ]
        if not same:
            r.note = (r.note + "; " if r.note else "") + "no fsjax setting as accurate"
            continue
        best = max(same, key=lambda f: f.rate)
        r.note = (r.note + "; " if r.note else "") + (
            f"fsjax {best.rate / r.rate:.3g}x faster at matched accuracy "
            f"({best.tool}, rtol {best.sizes['rtol']:g}, error {best.error:.2g})"
        )


def ode_section(plan: Plan, rows: list):
    for eps in plan.eps:
        ode_group("ode single", f"m=1 eps={eps:g}", po.problem(1, eps), plan, rows)
    for m in plan.particles:
        ode_group(
            "ode particles",
            f"m={m} eps={plan.particle_eps:g}",
            po.problem(m, plan.particle_eps),
            plan,
            rows,
        )
    sweep_section(plan, rows)
    matched(rows)


def sweep_section(plan: Plan, rows: list):
    """fsjax vmapped over `sweep_match_points` points at every tolerance, errors on an evenly
    spread subset; peers loop over the subset (a loop's points/s does not depend on N)."""
    eps = plan.sweep_eps
    h.log(f"ode sweep at eps={eps:g}")
    pts = po.sweep_points(plan.sweep_match_points, eps)
    pick = np.linspace(0, len(pts) - 1, plan.sweep_subset).astype(int)
    refs = [po.reference(pts[i]) for i in pick]
    ts = pts[0].ts
    case = f"sweep m=1 eps={eps:g}"
    sizes = {"eps": eps, "t_final": float(ts[-1]), "n_save": ts.size}
    args = po.fsjax_args(pts)
    variants = [("fsjax Kvaerno5", r, po.fsjax_solver) for r in plan.fsjax_rtols]
    for tool, rtol, make in variants:
        fn = make(rtol, batched=True)
        compile_s, out = h.first_call(lambda: jax.block_until_ready(fn(*args)))  # noqa: B023
        a, s, status, steps = (np.asarray(x) for x in out)
        timing = h.measure(lambda: jax.block_until_ready(fn(*args)), max(1, plan.repeats // 2))  # noqa: B023
        err = max(po.error(a[i], s[i], ref) for i, ref in zip(pick, refs, strict=True))
        useful = steps.sum() / (steps.size * steps.max())
        rows.append(
            h.Row(
                "ode sweep",
                case,
                tool,
                timing,
                len(pts) / timing.median,
                "points/s",
                err,
                sizes | {"rtol": rtol, "points": len(pts)},
                f"failed {int((status != 0).sum())}, useful step fraction "
                f"{useful:.2f}, first call {compile_s:.2g} s",
            )
        )
    for tool in po.peer_tools():
        for rtol in plan.peer_rtols:
            sub = [pts[i] for i in pick]
            runs = [po.time_loop(lambda p: po.peer_solve(tool, p, rtol), sub) for _ in range(2)]  # noqa: B023
            times = [t for t, _ in runs]
            timing = h.Timing(float(np.median(times)), min(times), max(times), len(times))
            outs = runs[0][1]
            err = max(po.error(o[0], o[1], ref) for o, ref in zip(outs, refs, strict=True))
            rows.append(
                h.Row(
                    "ode sweep",
                    case,
                    tool,
                    timing,
                    len(sub) / timing.median,
                    "points/s",
                    err,
                    sizes | {"rtol": rtol, "points": len(sub)},
                    f"loop over {len(sub)} points",
                )
            )
    scaling(plan, rows, eps)


def scaling(plan: Plan, rows: list, eps: float):
    """fsjax sweep throughput against N at rtol `plan.scaling_rtol`: one compiled function of
    `plan.sweep_chunk` points run over as many chunks as N needs (N below a chunk compiles its
    own), as the sweep engine does."""
    for n in plan.sweep_points:
        h.log(f"ode sweep N={n}")
        chunk = min(n, plan.sweep_chunk)
        pts = po.sweep_points(chunk, eps)
        fn = po.fsjax_solver(plan.scaling_rtol, batched=True)
        args = po.fsjax_args(pts)
        n_chunks = -(-n // chunk)
        compile_s, _ = h.first_call(lambda: jax.block_until_ready(fn(*args)))  # noqa: B023

        def run_all(fn=fn, args=args, n_chunks=n_chunks):
            for _ in range(n_chunks):
                jax.block_until_ready(fn(*args))

        timing = h.measure(run_all, 1 if n > plan.sweep_chunk else 3)
        rows.append(
            h.Row(
                "ode sweep N",
                f"N={n_chunks * chunk} eps={eps:g}",
                "fsjax Kvaerno5",
                timing,
                n_chunks * chunk / timing.median,
                "points/s",
                None,
                {"rtol": plan.scaling_rtol, "points": n_chunks * chunk, "chunk": chunk},
                f"first call (compiles) {compile_s:.2g} s",
            )
        )
    if plan.engine_points:
        from . import bench_sweep

        t, ds = bench_sweep.timed(bench_sweep.config(plan.engine_points))
        n = int(ds["kappa_final"].size)
        rows.append(
            h.Row(
                "ode sweep N",
                f"N={n} eps=0.01 (bench_sweep grid)",
                "fsjax run_sweep",
                h.Timing(t, t, t, 1),
                n / t,
                "points/s",
                None,
                {"rtol": 1e-8, "points": n},
                "sweep engine with diagnostics and balancing, benchmarks/bench_sweep.py",
            )
        )


def network_section(plan: Plan, rows: list, sizes=None, torch_peer=True, flop=None):
    sizes = sizes or plan.network_sizes
    flop = flop or plan.network_flop
    if torch_peer and pn.torch is not None:
        rows.append(
            h.Row(
                "network",
                "equivalence n=32 d=16 B=64",
                "fsjax vs PyTorch",
                None,
                error=pn.equivalence(),
                note="max |difference| after one step on one batch",
            )
        )
    for width, dim, batch in sizes:
        case = f"n={width} d={dim} B={batch}"
        h.log(f"network {case}")
        size = {"n": width, "d": dim, "B": batch}
        n_steps = max(2, int(flop / pn.step_flops(width, dim, batch)))
        trainer, state = pn.fsjax_trainer(width, dim, batch)
        compile_s, _ = h.first_call(lambda: pn.fsjax_steps(trainer, state, 1))  # noqa: B023
        t = h.measure(lambda: pn.fsjax_steps(trainer, state, n_steps), plan.repeats)  # noqa: B023
        step = pn.step_flops(width, dim, batch)
        mm = pn.matmul(width, dim, batch, n_steps)
        mm()
        tm = h.measure(mm, plan.repeats)
        mm_rate = pn.matmul_flops(width, dim, batch) * n_steps / tm.median
        fs_rate = step * n_steps / t.median
        rows.append(
            h.Row(
                "network",
                case,
                "matmul (jax, f32)",
                tm,
                mm_rate / 1e9,
                "GFLOP/s",
                sizes=size | {"steps": n_steps},
                note="(X W) W^T chained in one jitted loop",
            )
        )
        rows.append(
            h.Row(
                "network",
                case,
                "fsjax Trainer",
                t,
                n_steps / t.median,
                "steps/s",
                sizes=size | {"steps": n_steps},
                note=f"{fs_rate / 1e9:.3g} GFLOP/s = {fs_rate / mm_rate:.0%} of matmul; "
                f"first call {compile_s:.2g} s",
            )
        )
        if torch_peer and pn.torch is not None:
            # Both thread counts: on a shared, oversubscribed CPU OpenMP's spinning threads can
            # make the multi-threaded loop slower than the single-threaded one.
            for threads in sorted({1, os.cpu_count() or 1}):
                pn.torch.set_num_threads(threads)
                loop = pn.TorchLoop(trainer, state)
                loop.steps(1)
                tt = h.measure(lambda: loop.steps(n_steps), plan.repeats)  # noqa: B023
                rows.append(
                    h.Row(
                        "network",
                        case,
                        f"PyTorch loop {threads} thread(s)",
                        tt,
                        n_steps / tt.median,
                        "steps/s",
                        sizes=size | {"steps": n_steps, "threads": threads},
                        note=f"{step * n_steps / tt.median / 1e9:.3g} GFLOP/s; fsjax "
                        f"{tt.median / t.median:.3g}x faster",
                    )
                )


def sensitivity_section(plan: Plan, rows: list):
    x = jnp.asarray(ps.POINT)
    adjoints = ps.ADJOINTS if plan.sensitivity_batch else {"default": None}
    for name, adjoint in adjoints.items():
        h.log(f"sensitivity, adjoint {name}")
        fwd, grad = ps.functions(adjoint)
        c_f, _ = h.first_call(lambda: jax.block_until_ready(fwd(x)))  # noqa: B023
        c_g, _ = h.first_call(lambda: jax.block_until_ready(grad(x)))  # noqa: B023
        tf = h.measure(lambda: jax.block_until_ready(fwd(x)), plan.repeats * 4)  # noqa: B023
        tg = h.measure(lambda: jax.block_until_ready(grad(x)), plan.repeats * 4)  # noqa: B023
        case = f"t_onset c3=0.3 a0=0.5 eps=0.05, adjoint {name}"
        rows.append(
            h.Row(
                "sensitivity",
                case,
                "forward onset_time",
                tf,
                1 / tf.median,
                "solves/s",
                note=f"t_onset {float(fwd(x)):.6g}; first call {c_f:.2g} s",
            )
        )
        rows.append(
            h.Row(
                "sensitivity",
                case,
                "grad onset_time (3 params)",
                tg,
                1 / tg.median,
                "grads/s",
                note=f"{tg.median / tf.median:.3g}x forward; first call {c_g:.2g} s",
            )
        )
        if name == "default":
            rows[-1].error = ps.finite_difference_error(grad)
            rows[-1].note += "; error: max relative difference to central differences"
    if plan.sensitivity_config:
        sensitivity_config(plan, rows)
    if plan.sensitivity_batch:
        pts = ps.points(plan.sensitivity_batch)
        fwd, grad = ps.functions(batched=True)
        _ = h.first_call(lambda: jax.block_until_ready(fwd(pts)))
        _ = h.first_call(lambda: jax.block_until_ready(grad(pts)))
        tf = h.measure(lambda: jax.block_until_ready(fwd(pts)), plan.repeats)
        tg = h.measure(lambda: jax.block_until_ready(grad(pts)), plan.repeats)
        case = f"t_onset vmapped over {len(pts)} points, adjoint default"
        rows.append(
            h.Row("sensitivity", case, "forward onset_time", tf, len(pts) / tf.median, "points/s")
        )
        rows.append(
            h.Row(
                "sensitivity",
                case,
                "grad onset_time (3 params)",
                tg,
                len(pts) / tg.median,
                "points/s",
                note=f"{tg.median / tf.median:.3g}x forward",
            )
        )


def sensitivity_config(plan: Plan, rows: list):
    """configs/sensitivity.yaml through issue 4's API (`fsjax._sensitivity`): the forward
    quantities (t_onset, kappa_final, unlearning) against the reverse-mode gradient of t_onset
    with respect to all 21 parameters (as `benchmarks/fastslow.py gradcost`)."""
    from fsjax._analysis.sensitivity import parameters_from, quantities

    h.log("sensitivity, configs/sensitivity.yaml")
    params, setup = parameters_from(fsjax.load_config(HERE.parent / "configs/sensitivity.yaml"))
    grad = jax.jit(jax.grad(lambda p, s: quantities(p, s)[0]))
    fns = {"forward quantities()": quantities, "grad t_onset (21 params)": grad}
    timings = {}
    for name, fn in fns.items():
        c, _ = h.first_call(lambda fn=fn: jax.block_until_ready(fn(params, setup)))
        timings[name] = (
            c,
            h.measure(lambda fn=fn: jax.block_until_ready(fn(params, setup)), plan.repeats * 4),
        )
    fwd = timings["forward quantities()"][1].median
    case = "configs/sensitivity.yaml (rtol 1e-11; forward = t_onset solve + save-grid solve)"
    for name, (c, t) in timings.items():
        rows.append(
            h.Row(
                "sensitivity",
                case,
                name,
                t,
                1 / t.median,
                "calls/s",
                note=f"{t.median / fwd:.3g}x forward; first call {c:.2g} s",
            )
        )


def gpu_section(plan: Plan, rows: list, enabled: bool):
    if not enabled or jax.default_backend() != "gpu":
        why = "not measured: no GPU" if enabled else "not measured: run with --gpu on a GPU"
        rows.append(h.Row("gpu", "sweeps, network step, compile times", "fsjax", None, note=why))
        return
    eps = plan.sweep_eps
    for n in plan.gpu_points:
        pts = po.sweep_points(min(n, plan.gpu_chunk), eps)
        fn = po.fsjax_solver(1e-10, batched=True)
        args = po.fsjax_args(pts)
        compile_s, _ = h.first_call(lambda: jax.block_until_ready(fn(*args)))  # noqa: B023
        chunks = -(-n // len(pts))
        t = h.measure(lambda: [jax.block_until_ready(fn(*args)) for _ in range(chunks)], 1)  # noqa: B023
        rows.append(
            h.Row(
                "gpu",
                f"sweep N={chunks * len(pts)} eps={eps:g}",
                "fsjax Kvaerno5",
                t,
                chunks * len(pts) / t.median,
                "points/s",
                None,
                {"rtol": 1e-10, "chunk": len(pts)},
                f"first call {compile_s:.2g} s",
            )
        )
    network_section(
        plan, rows, sizes=plan.gpu_network_sizes, torch_peer=False, flop=plan.gpu_network_flop
    )
    for r in rows:
        if r.section == "network" and r.sizes.get("n") in {s[0] for s in plan.gpu_network_sizes}:
            r.section = "gpu"


def targets(rows: list[h.Row], gpu: bool) -> list[h.Target]:
    out = []
    sweep = [r for r in rows if r.section == "ode sweep"]
    for peer, factor in (("Radau", 100.0), ("CVODE", 1.0)):
        peers = [r for r in sweep if r.tool == peer]
        if not peers:
            out.append(
                h.Target(
                    f"ODE sweep vs {peer}",
                    f">= {factor:g}x points/s",
                    "",
                    None,
                    f"{peer} not available",
                )
            )
            continue
        ratios = []
        for r in peers:
            fs = [f for f in sweep if f.tool.startswith("fsjax") and f.error <= r.error]
            ratios.append((max(f.rate for f in fs) / r.rate if fs else 0.0, r))
        worst, r = min(ratios, key=lambda x: x[0])
        measured = ", ".join(f"{x:.3g}x (rtol {p.sizes['rtol']:g})" for x, p in ratios)
        out.append(
            h.Target(
                f"ODE sweep on CPU vs {peer}",
                f">= {factor:g}x points/s at equal or better accuracy",
                measured,
                worst >= factor if worst > 0 else False,
                "ratio to the fastest fsjax setting at least as accurate",
            )
        )
    torch_rows = [r for r in rows if r.section == "network" and r.tool.startswith("PyTorch")]
    if torch_rows:
        ratios = []
        for case in dict.fromkeys(r.case for r in torch_rows):
            f = next(x for x in rows if x.tool == "fsjax Trainer" and x.case == case)
            best = max(r.rate for r in torch_rows if r.case == case)
            ratios.append((f.rate / best, case))
        out.append(
            h.Target(
                "network step vs PyTorch",
                ">= 1x steps/s of the faster thread count",
                ", ".join(f"{x:.3g}x ({c})" for x, c in ratios),
                min(x for x, _ in ratios) >= 1.0,
            )
        )
    gpu_net = [r for r in rows if r.section == "gpu" and r.tool == "fsjax Trainer"]
    if gpu_net:
        fr = [float(r.note.split(" = ")[1].split("%")[0]) / 100 for r in gpu_net]
        out.append(
            h.Target(
                "network step on GPU",
                ">= 50% of matmul rate at large sizes",
                ", ".join(f"{x:.0%}" for x in fr),
                fr[-1] >= 0.5,
            )
        )
    else:
        out.append(
            h.Target(
                "network step on GPU",
                ">= 50% of matmul rate at large sizes",
                "",
                None,
                "no GPU in this run" if gpu else "run with --gpu",
            )
        )
    sens = [r for r in rows if r.section == "sensitivity" and r.tool.startswith("grad")]
    for r in sens:
        ratio = float(r.note.split("x forward")[0])
        out.append(
            h.Target(
                f"gradient of t_onset: {r.case}",
                "<= 5x forward",
                f"{ratio:.3g}x",
                ratio <= 5.0,
            )
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the benchmarks")
    run.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    run.add_argument("--gpu", action="store_true", help="add the GPU section")
    run.add_argument(
        "--sections",
        default="ode,network,sensitivity",
        help="comma-separated subset of ode, network, sensitivity",
    )
    run.add_argument("--out", type=Path, default=HERE / "results", help="JSON directory")
    run.add_argument("--results-md", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"ode", "network", "sensitivity"}
    if unknown:
        parser.error(f"--sections: unknown {sorted(unknown)}; allowed: ode, network, sensitivity")
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    env = h.environment()
    rows: list[h.Row] = []
    if "ode" in sections:
        ode_section(plan, rows)
    if "network" in sections:
        network_section(plan, rows)
    if "sensitivity" in sections:
        sensitivity_section(plan, rows)
    gpu_section(plan, rows, args.gpu)
    tgts = targets(rows, args.gpu)
    key = env["backend"] + ("-quick" if args.quick else "")
    print(h.target_table(tgts))
    print()
    print(h.table(rows))
    path = h.write_json(args.out, env, command, rows, tgts, dataclasses.asdict(plan))
    h.update_results_md(args.results_md, key, h.report(env, command, rows, tgts, key))
    print(f"\nwrote {path} and {args.results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
