"""How long a prediction may take, one rule for the planner and the bridge (no imports of
the physics, so the bridge stays light)."""
from __future__ import annotations

import math


def wall_deadline(simulated: float, min_speed: float, allowance: float,
                  max_time: float) -> float:
    """Wall seconds a rollout of ``simulated`` seconds may take: at ``min_speed`` x real time
    plus a fixed ``allowance``, at most ``max_time``. The planner kills a worker past it; the
    bridge waits for a verdict by the same rule (with its own allowance for transport)."""
    if not math.isfinite(simulated):
        return max_time
    return min(max(simulated, 0.0) / min_speed + allowance, max_time)
