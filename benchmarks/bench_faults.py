"""The bridge killed mid-goal: how far the hardware moves after, with and without look-ahead.

The stand-in runs as a graph of its own (as a real robot's driver runs outside the twin's
runner); the twin's graph points at it. From home, a 6 s goal to a far pose; once the hardware
has covered 30 % of the way the bridge is killed (SIGKILL), and the hardware's joint states
show how far it goes on before it rests (tests/bridge_death.py, shared with the integration
test). Measured with the bridge's default ``hardware_lookahead`` (1 s) and with 0 (the whole
goal given at once, as a plain client would): ``bridge_death_travel_rad`` against
``bridge_death_travel_rad_unbounded``; the bound is the goal's speed over 1.5 look-aheads plus
what the hardware lags behind its command. ``bridge_death_travel_rad_streamed``: the same
trajectory published on the bridge's ``joint_trajectory`` topic, bounded the same way.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import Target, log, ros
from reverse_digital_twin.client import BackgroundNode
from tests.bridge_death import SplitGraphs

LOOKAHEAD = 1.0
GOAL_SECONDS = 6.0
RUNS = 3


def measure(robot: str) -> dict:
    figures: dict = {}
    with ros(), tempfile.TemporaryDirectory(prefix='bench_faults_') as logs:
        background = BackgroundNode('bench_faults')
        graphs = SplitGraphs(background.node, robot, Path(logs),
                             bridge={'hardware_lookahead': LOOKAHEAD})
        try:
            for name, lookahead, streamed in (('', LOOKAHEAD, False),
                                              ('_streamed', LOOKAHEAD, True),
                                              ('_unbounded', 0.0, False)):
                runs = []
                for i in range(RUNS):
                    if i or name:
                        graphs.restart_bridge(hardware_lookahead=lookahead)
                    run = graphs.kill_bridge_mid_goal(GOAL_SECONDS, streamed=streamed)
                    log(f'bridge killed (hardware_lookahead {lookahead:g} s'
                        f'{", streamed trajectory" if streamed else ""}): the hardware moved '
                        f'{run.travel_rad:.3f} rad more of {run.left_rad:.3f} left, at rest '
                        f'{run.stopped_after_s:.2f} s after')
                    runs.append(run)
                worst = max(runs, key=lambda r: r.travel_rad)
                figures[f'bridge_death_travel_rad{name}'] = round(worst.travel_rad, 4)
                figures[f'bridge_death_stop_s{name}'] = round(
                    max(r.stopped_after_s for r in runs), 3)
                figures[f'bridge_death_left_rad{name}'] = round(worst.left_rad, 4)
                figures['bridge_death_goal_speed_rad_s'] = round(worst.speed_rad_s, 4)
        finally:
            graphs.close()
            background.close()
    figures['bridge_death_lookahead_s'] = LOOKAHEAD
    return figures


def targets(results: dict) -> list[Target]:
    """One target per key (the aggregator keys them): the stricter of the issue's bound and
    half the unbounded travel."""
    speed = results.get('bridge_death_goal_speed_rad_s', 0.0)
    bound = round(speed * (1.5 * LOOKAHEAD + 0.4), 4)
    half = 0.5 * results.get('bridge_death_travel_rad_unbounded', 0.0)
    why = (f"issue 11: the goal's speed x (1.5 look-aheads + 0.4 s of lag) = {bound:g}, "
           f'and at most half the travel without look-ahead ({half:g})')
    return [Target('bridge_death_travel_rad', min(bound, half), '<=', why),
            Target('bridge_death_travel_rad_streamed', min(bound, half), '<=',
                   f'the same trajectory streamed on joint_trajectory: {why}')]


def rows(r: dict) -> list[tuple[str, str, str]]:
    return [('hardware travel after the bridge is killed (rad)',
             f'{r["bridge_death_travel_rad"]:.3f}',
             f'unbounded: {r["bridge_death_travel_rad_unbounded"]:.3f}'),
            ('... at rest after (s)', f'{r["bridge_death_stop_s"]:.2f}',
             f'unbounded: {r["bridge_death_stop_s_unbounded"]:.2f}'),
            ('... the same trajectory streamed on joint_trajectory (rad)',
             f'{r["bridge_death_travel_rad_streamed"]:.3f}',
             f'at rest after {r["bridge_death_stop_s_streamed"]:.2f} s')]


if __name__ == '__main__':
    from benchmarks import run_alone
    raise SystemExit(run_alone(measure, __doc__))
