r"""The one comparison of a network's records with the reduced flow started from them:

$$\max_{t \ge t_\min} |s_\text{net}(t) - s_\text{flow}(t)|, \qquad
  \max_{t \ge t_\min} |a_\text{net}(t) - a_\text{flow}(t)|,$$

the early transient before $t_\min$ (inclusive bound) left out. Pure `jax.numpy`: jits and
vmaps over networks, and runs on host arrays as well.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

NAN_POLICIES = ("propagate", "omit")
# Where the window starts unless a config says otherwise (`compare`'s `t_min`): after the first
# unit of time, the networks' own transient from their random rows, which the flow leaves out.
T_MIN = 1.0


def _max_deviation(ts, x, y, t_min, nan_policy: str):
    dev = jnp.abs(jnp.asarray(x) - jnp.asarray(y))
    ts = jnp.asarray(ts)
    late = (ts >= t_min).reshape(ts.shape + (1,) * (dev.ndim - ts.ndim))
    counted = jnp.broadcast_to(late, dev.shape)
    if nan_policy == "omit":
        counted = counted & ~jnp.isnan(dev)
    # NaN where nothing is counted: -inf, the identity of max, must not leak out.
    return jnp.where(jnp.any(counted), jnp.max(jnp.where(counted, dev, -jnp.inf)), jnp.nan)


def deviations(
    ts: Float[Array, " T"],
    s_net: Float[Array, " T *n"],
    a_net: Float[Array, " T *n"],
    s_flow: Float[Array, " T *n"],
    a_flow: Float[Array, " T *n"],
    t_min: float = T_MIN,
    *,
    nan_policy: str = "propagate",
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """(max |s_net - s_flow|, max |a_net - a_flow|) over the records at times `ts >= t_min`
    (time along the first axis; further axes, e.g. one per neuron, are maxed over too); NaN
    where no time is >= `t_min`. `nan_policy`: "propagate" (a NaN record, of a diverged
    network or a failed solve, makes the deviation NaN) or "omit" (NaN records are skipped;
    NaN if every one is)."""
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {', '.join(NAN_POLICIES)}; got {nan_policy!r}")
    return (
        _max_deviation(ts, s_net, s_flow, t_min, nan_policy),
        _max_deviation(ts, a_net, a_flow, t_min, nan_policy),
    )
