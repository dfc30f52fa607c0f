r"""Continuous batching: one compiled loop integrates a queue of points on $L$ lanes.

A vmapped `fsjax.solve` runs every member of its batch until the slowest one ends, so a batch
whose step counts spread by a factor of five idles most of its lanes for most of its steps.
Here each lane holds one point (its model, built from the point's row as traced arrays, and its
integration state) and steps on its own; a lane whose point ends (it reached $t_1$, ran out of
steps, or failed) writes that point's saves, status and step count into the output at the
point's slot and takes the next point of the queue. The loop runs until the queue is empty and
every lane is done, so lanes idle only while the last points of the queue finish.

The step is diffrax's own loop body (`diffrax.diffeqsolve`'s), written from the public pieces:
the solver's `step`, the controller's `init` and `adapt_step_size`, the solver's
`interpolation_cls` at the save times, and the same bookkeeping (clipping onto $t_1$, keeping
rejected steps' state, the first unsuccessful result, `max_steps`). It therefore takes the
same steps as `fsjax.solve` with the same settings, for every solver fsjax offers; solvers
whose dense output is not accurate step onto the save times (`interpolates_save_times`).

At most `reload` ended lanes are retired an iteration (lanes beyond wait an iteration): their
outputs are written every iteration (a few rows), and loading their next points, which builds
`reload` models, not $L$, is in a `lax.cond` taken only at iterations where some lane ended.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int, PyTree

from .base import AbstractSystem
from .settings import SolverSettings
from .solve import (
    FIRST_STEP,
    TERM,
    Trajectory,
    controller,
    interpolates_save_times,
    status_code,
    trajectory,
)

Setup = Callable[[Float[Array, " k"]], tuple[AbstractSystem, Array, Array]]


class _Lane(eqx.Module):
    """One lane: the queue slot of its point (-1: idle), the point's model, and diffrax's
    loop state for it (`ys`: the saves so far, inf where not reached)."""

    point: Int[Array, ""]
    model: AbstractSystem
    y: PyTree[Array]
    tprev: Float[Array, ""]
    tnext: Float[Array, ""]
    solver_state: PyTree
    controller_state: PyTree
    result: diffrax.RESULTS
    num_steps: Int[Array, ""]
    save_index: Int[Array, ""]
    ys: PyTree[Array]


class _Queue(eqx.Module):
    """The loop's carry: the lanes' array leaves, the next queue slot, the finished points'
    saves, statuses and step counts, and the iterations run."""

    lanes: _Lane
    next: Int[Array, ""]
    ys: PyTree[Array]
    status: Int[Array, " N"]
    num_steps: Int[Array, " N"]
    iterations: Int[Array, ""]


class LaneSolver(eqx.Module):
    """`settings` applied to points built by `setup` (row -> model, a0, s0), lane by lane."""

    settings: SolverSettings
    setup: Setup

    @property
    def controller(self) -> diffrax.AbstractStepSizeController:
        s = self.settings
        return controller(s.rtol, s.atol, None if interpolates_save_times(s.solver) else s.ts)

    def start(self, values: Float[Array, " k"], point: Int[Array, ""]) -> _Lane:
        """A lane at t = 0 on the point with row `values` (queue slot `point`), as
        `diffrax.diffeqsolve` initialises it."""
        solver, ts = self.settings.solver, self.settings.ts
        model, a0, s0 = self.setup(values)
        y0 = model.initial_state(a0, s0)
        t1 = ts[-1]
        tnext, controller_state = self.controller.init(
            TERM, 0.0, t1, y0, FIRST_STEP, model, solver.func, solver.error_order(TERM)
        )
        tnext = jnp.minimum(tnext, t1)
        return _Lane(
            point=point,
            model=model,
            y=y0,
            tprev=jnp.zeros_like(tnext),
            tnext=tnext,
            solver_state=solver.init(TERM, 0.0, tnext, y0, model),
            controller_state=controller_state,
            result=diffrax.RESULTS.successful,
            num_steps=jnp.zeros((), dtype=int),
            save_index=jnp.zeros((), dtype=int),
            ys=jax.tree.map(lambda x: jnp.full((len(ts), *x.shape), jnp.inf, x.dtype), y0),
        )

    def running(self, lane: _Lane) -> Array:
        """Whether the lane's point needs another step: diffeqsolve's loop condition within
        `max_steps`."""
        return (
            (lane.point >= 0)
            & (lane.tprev < self.settings.ts[-1])
            & (lane.result == diffrax.RESULTS.successful)
            & (lane.num_steps < self.settings.max_steps)
        )

    def step(self, lane: _Lane) -> _Lane:
        """One step of the lane's point (diffeqsolve's loop body), saves gated on `running`."""
        solver, ts = self.settings.solver, self.settings.ts
        t1 = ts[-1]
        # fsjax's controller has no jump_ts, so diffeqsolve resolves made_jump to a static
        # False: the same here.
        y, y_error, dense_info, solver_state, solver_result = solver.step(
            TERM, lane.tprev, lane.tnext, lane.y, lane.model, lane.solver_state, False
        )
        y_error = jax.tree.map(lambda x: jnp.where(jnp.isnan(x), jnp.inf, x), y_error)
        keep_step, tprev, tnext, _, controller_state, controller_result = (
            self.controller.adapt_step_size(
                lane.tprev,
                lane.tnext,
                lane.y,
                y,
                lane.model,
                y_error,
                solver.error_order(TERM),
                lane.controller_state,
            )
        )
        tprev = jnp.minimum(tprev, t1)
        # Round tnext onto t1 within 100 ULP, as diffeqsolve does (stable dense output).
        t1_floor = t1
        for _ in range(100):
            t1_floor = jnp.nextafter(t1_floor, -jnp.inf)
        clipped = jnp.where(keep_step, t1, tprev + 0.5 * (t1 - tprev))
        tnext = jnp.where(tnext > t1_floor, clipped, tnext)

        def keep(new, old):
            return jnp.where(keep_step, new, old)

        y = jax.tree.map(keep, y, lane.y)
        solver_state = jax.tree.map(keep, solver_state, lane.solver_state)
        ok = diffrax.RESULTS.successful
        solver_result = diffrax.RESULTS.where(keep_step, solver_result, ok)
        result = diffrax.RESULTS.where(lane.result == ok, solver_result, lane.result)
        result = diffrax.RESULTS.where(result == ok, controller_result, result)

        interpolator = solver.interpolation_cls(t0=lane.tprev, t1=lane.tnext, **dense_info)
        save = keep_step & self.running(lane)

        def more(carry):
            i, _ = carry
            return save & (ts[i] <= lane.tnext) & (i < len(ts))

        def save_one(carry):
            i, ys = carry
            y_t = interpolator.evaluate(ts[i])
            return i + 1, jax.tree.map(lambda buf, v: buf.at[i].set(v), ys, y_t)

        save_index, ys = lax.while_loop(more, save_one, (lane.save_index, lane.ys))
        return _Lane(
            point=lane.point,
            model=lane.model,
            y=y,
            tprev=tprev,
            tnext=tnext,
            solver_state=solver_state,
            controller_state=controller_state,
            result=result,
            num_steps=lane.num_steps + 1,
            save_index=save_index,
            ys=ys,
        )

    def status(self, lane: _Lane) -> Int[Array, ""]:
        """The status of an ended lane's point: diffeqsolve's result, max_steps reached when
        its loop condition still held."""
        unfinished = (lane.tprev < self.settings.ts[-1]) & (
            lane.result == diffrax.RESULTS.successful
        )
        result = diffrax.RESULTS.where(unfinished, diffrax.RESULTS.max_steps_reached, lane.result)
        return status_code(result)

    def __call__(
        self, rows: Float[Array, "N k"], count: Int[Array, ""], lanes: int, reload: int
    ) -> tuple[Trajectory, Int[Array, ""]]:
        """The trajectories of the first `count` points of `rows` (the queue, in order; the
        other slots stay NaN with status -1), on `lanes` lanes retiring and loading at most
        `reload` of them an iteration; and the number of iterations, each `lanes`
        lane-steps."""
        n = rows.shape[0]
        slots = jnp.arange(lanes)
        first = jax.vmap(self.start)(
            rows[jnp.minimum(slots, n - 1)], jnp.where(slots < count, slots, -1)
        )
        params, static = eqx.partition(first, eqx.is_array)
        queue = _Queue(
            lanes=params,
            next=jnp.minimum(lanes, count),
            ys=jax.tree.map(lambda x: jnp.full((n, *x.shape[1:]), jnp.inf, x.dtype), first.ys),
            status=jnp.full(n, -1, dtype=jnp.int32),
            num_steps=jnp.zeros(n, dtype=int),
            iterations=jnp.zeros((), dtype=int),
        )

        def load(lanes_now, idx, new_point, take):
            """Lanes `idx` (`lanes`: none) start points `new_point` where `take`, else idle."""
            new = jax.vmap(self.start)(
                rows[jnp.minimum(new_point, n - 1)], jnp.where(take, new_point, -1)
            )
            new_params = eqx.filter(new, eqx.is_array)
            return jax.tree.map(
                lambda old, x: old.at[idx].set(x, mode="drop"), lanes_now, new_params
            )

        def body(q: _Queue) -> _Queue:
            batch = eqx.combine(q.lanes, static)
            run = jax.vmap(self.running)(batch)
            stepped = eqx.filter(jax.vmap(self.step)(batch), eqx.is_array)

            def select(new, old):
                return jnp.where(run.reshape(-1, *(1,) * (new.ndim - 1)), new, old)

            # The saves are gated inside the step: their buffers need no select.
            params = eqx.tree_at(
                lambda lane: lane.ys, jax.tree.map(select, stepped, q.lanes), stepped.ys
            )
            batch = eqx.combine(params, static)
            # Retire up to `reload` ended lanes: their points' outputs go to their slots
            # (slot n: dropped) on every iteration, a few rows; loading new points builds
            # models, so only at iterations where some lane ended.
            ended = (batch.point >= 0) & ~jax.vmap(self.running)(batch)
            (idx,) = jnp.nonzero(ended, size=reload, fill_value=lanes)
            valid = idx < lanes
            done = jax.tree.map(lambda x: x[jnp.minimum(idx, lanes - 1)], batch)
            slot = jnp.where(valid, done.point, n)
            new_point = q.next + jnp.arange(reload)
            take = valid & (new_point < count)
            params = lax.cond(jnp.any(valid), load, lambda p, *_: p, params, idx, new_point, take)
            return _Queue(
                lanes=params,
                next=jnp.minimum(q.next + jnp.sum(valid), count),
                ys=jax.tree.map(lambda out, x: out.at[slot].set(x, mode="drop"), q.ys, done.ys),
                status=q.status.at[slot].set(jax.vmap(self.status)(done), mode="drop"),
                num_steps=q.num_steps.at[slot].set(done.num_steps, mode="drop"),
                iterations=q.iterations + 1,
            )

        q = lax.while_loop(lambda q: jnp.any(q.lanes.point >= 0), body, queue)
        ts = jnp.broadcast_to(self.settings.ts, (n, *self.settings.ts.shape))
        trajectories = jax.vmap(trajectory)(ts, q.ys, q.status, q.num_steps)
        return trajectories, q.iterations
