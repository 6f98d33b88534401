"""Fuzzing the twin graph's client interfaces: what to send (hypothesis strategies) and how to
judge what came back (:class:`GraphFuzzer`).

One home for both the CI-sized run (tests/integration/test_fuzz.py) and the >= 1,000-input run
of ``make bench`` (benchmarks/bench_fuzz.py). Every input is malformed on purpose: a
well-formed goal (a few points near the start pose, 0.5-2 s) with one to three defects drawn
from :data:`TRAJECTORY_DEFECTS`, through every way in: FollowJointTrajectory goals (with
tolerances of every sign and any goal_time_tolerance), ``joint_trajectory`` messages,
``move_to`` goals, ``predict_trajectory`` and ``switch_target`` requests. The verdict on each:
refused with the driver's code and a reason a person can act on, and nothing moved.

Needs hypothesis (a test and bench dependency, tools/requirements.txt), never the nodes.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from builtin_interfaces.msg import Duration, Time
from control_msgs.action import FollowJointTrajectory
from control_msgs.msg import JointTolerance
from hypothesis import strategies as st
from rcl_interfaces.msg import Log
from rdt_interfaces.action import MoveTo
from rdt_interfaces.srv import PredictTrajectory, SwitchTarget
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from reverse_digital_twin.client import SpinSafeActionClient, wait_for, wait_until_heard
from reverse_digital_twin.commander import TwinCommander
from reverse_digital_twin.nodes.ros_common import SYSTEM_DEFAULT_QOS, to_duration, to_time
from reverse_digital_twin.runner import Stack
from reverse_digital_twin.stack import TwinNames

Result = FollowJointTrajectory.Result
INT32 = (-2**31, 2**31 - 1)
UINT32_MAX = 2**32 - 1
#: Extreme numbers every numeric field is tried with, besides what hypothesis draws.
EXTREMES = (math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e300, -1e300, 5e-324)
#: rad: a motion smaller than this is joint-state noise, not a move (the stand-in's sensor
#: noise included).
MOVED_TOLERANCE = 5e-3
#: Largest "enormous" trajectory (points); the test passes a smaller one.
ENORMOUS_POINTS = 20000


@dataclass(frozen=True)
class RobotFacts:
    """What the strategies need of the robot: its controller joints, start pose and limits."""

    joints: tuple[str, ...]
    home: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    @staticmethod
    def of(robot: str) -> 'RobotFacts':
        from reverse_digital_twin.robot_setup import load_robot  # noqa: PLC0415
        setup = load_robot(robot)
        model = setup.model()
        limits = [model.joint(j).limits for j in setup.joints]
        return RobotFacts(tuple(setup.joints), tuple(float(v) for v in setup.home),
                          tuple(lim.lower for lim in limits), tuple(lim.upper for lim in limits))


# --- strategies ---------------------------------------------------------------------------------

def any_float() -> st.SearchStrategy[float]:
    """Any float64, the extremes favoured."""
    return st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True))


def any_duration() -> st.SearchStrategy[Duration]:
    """Durations of every sign and size, nanosec beyond a second included."""
    return st.builds(Duration, sec=st.one_of(st.sampled_from((0, 1, -1, *INT32)),
                                             st.integers(*INT32)),
                     nanosec=st.one_of(st.sampled_from((0, 999_999_999, 10**9, UINT32_MAX)),
                                       st.integers(0, UINT32_MAX)))


def joint_name(facts: RobotFacts) -> st.SearchStrategy[str]:
    """A controller joint or any other string (empty, unicode, a near miss)."""
    return st.one_of(st.sampled_from(facts.joints), st.text(max_size=20),
                     st.sampled_from(facts.joints).map(lambda j: j.upper()))


def tolerances(facts: RobotFacts) -> st.SearchStrategy[list[JointTolerance]]:
    """path_tolerance / goal_tolerance entries of every sign, for known and unknown joints."""
    return st.lists(st.builds(JointTolerance, name=joint_name(facts), position=any_float(),
                              velocity=any_float(), acceleration=any_float()), max_size=8)


@st.composite
def base_trajectory(draw, facts: RobotFacts) -> JointTrajectory:
    """A well-formed trajectory the twin would accept: 1-4 points within 0.1 rad of the start
    pose, strictly increasing times from 0.5 s to at most 2 s, the last point at rest."""
    n_points = draw(st.integers(1, 4))
    times = sorted(draw(st.lists(st.floats(0.5, 2.0), min_size=n_points, max_size=n_points,
                                 unique=True)))
    home = np.array(facts.home)
    traj = JointTrajectory(joint_names=list(facts.joints))
    for i, t in enumerate(times):
        offset = np.array(draw(st.lists(st.floats(-0.1, 0.1), min_size=len(home),
                                        max_size=len(home))))
        q = np.clip(home + offset, np.array(facts.lower) + 0.05, np.array(facts.upper) - 0.05)
        point = JointTrajectoryPoint(positions=q.tolist(), time_from_start=to_duration(t))
        if i == n_points - 1 and draw(st.booleans()):
            point.velocities = [0.0] * len(home)
        traj.points.append(point)
    if draw(st.booleans()):  # joints in another order: mapped by name, still well-formed
        order = draw(st.permutations(range(len(facts.joints))))
        traj.joint_names = [traj.joint_names[i] for i in order]
        for p in traj.points:
            p.positions = [p.positions[i] for i in order]
            if len(p.velocities):
                p.velocities = [p.velocities[i] for i in order]
    return traj


def _any_point(draw, traj: JointTrajectory) -> JointTrajectoryPoint:
    return traj.points[draw(st.integers(0, len(traj.points) - 1))]


def _non_finite(draw, traj, facts):
    field_name = draw(st.sampled_from(('positions', 'velocities', 'accelerations')))
    point = _any_point(draw, traj)
    values = list(getattr(point, field_name)) or [0.0] * len(traj.joint_names)
    values[draw(st.integers(0, len(values) - 1))] = draw(
        st.sampled_from((math.nan, math.inf, -math.inf)))
    setattr(point, field_name, values)


def _beyond_limits(draw, traj, facts):
    known = [j for j, name in enumerate(traj.joint_names) if name in facts.joints]
    if not known:  # an earlier defect renamed every joint: nothing has limits
        return _non_finite(draw, traj, facts)
    point = _any_point(draw, traj)
    j = draw(st.sampled_from(known))
    k = facts.joints.index(traj.joint_names[j])
    if len(point.positions) != len(traj.joint_names):
        point.positions = list(facts.home)[:len(traj.joint_names)] + \
            [0.0] * max(len(traj.joint_names) - len(facts.home), 0)
    excess = draw(st.one_of(st.floats(1e-3, 10.0), st.sampled_from((1e6, 1e300))))
    values = list(point.positions)
    values[j] = facts.upper[k] + excess if draw(st.booleans()) else facts.lower[k] - excess
    point.positions = values


def _times_not_increasing(draw, traj, facts):
    """Unsorted or duplicated times, huge and negative ones among them."""
    if len(traj.points) == 1:
        traj.points.append(JointTrajectoryPoint(positions=list(traj.points[0].positions)))
    i = draw(st.integers(1, len(traj.points) - 1))
    earlier = traj.points[i - 1].time_from_start
    traj.points[i].time_from_start = draw(st.one_of(
        st.just(Duration(sec=earlier.sec, nanosec=earlier.nanosec)),
        st.builds(Duration, sec=st.integers(INT32[0], max(earlier.sec - 1, INT32[0])),
                  nanosec=st.integers(0, 999_999_999))))
    if draw(st.booleans()):  # and a huge time before them
        traj.points[i - 1].time_from_start = Duration(sec=INT32[1], nanosec=0)


def _negative_time(draw, traj, facts):
    """Every time negative: the trajectory 'ended' before it was sent."""
    shift = draw(st.integers(3, 2**31 - 1))
    for p in traj.points:
        p.time_from_start = Duration(sec=max(p.time_from_start.sec - shift, INT32[0]),
                                     nanosec=p.time_from_start.nanosec)


def _joints_duplicated(draw, traj, facts):
    names = list(traj.joint_names)
    if len(names) < 2:
        names.append(names[0])
    else:
        i, k = draw(st.permutations(range(len(names))))[:2]
        names[k] = names[i]
    traj.joint_names = names


def _joint_unknown(draw, traj, facts):
    names = list(traj.joint_names)
    names[draw(st.integers(0, len(names) - 1))] = draw(
        st.text(max_size=20).filter(lambda s: s not in facts.joints))
    traj.joint_names = names


def _joint_missing(draw, traj, facts):
    keep = draw(st.integers(0, len(traj.joint_names) - 1))
    traj.joint_names = list(traj.joint_names)[:keep]
    for p in traj.points:
        p.positions = list(p.positions)[:keep]
        if len(p.velocities):
            p.velocities = list(p.velocities)[:keep]


def _joint_extra(draw, traj, facts):
    traj.joint_names = list(traj.joint_names) + [draw(joint_name(facts))]
    for p in traj.points:
        p.positions = list(p.positions) + [draw(st.floats(-0.1, 0.1))]
        if len(p.velocities):
            p.velocities = list(p.velocities) + [0.0]


def _ragged(draw, traj, facts):
    point = _any_point(draw, traj)
    field_name = draw(st.sampled_from(('positions', 'velocities', 'accelerations')))
    n = len(traj.joint_names)
    size = draw(st.integers(0, 2 * n + 2).filter(lambda k: k != n and (
        k != 0 or field_name == 'positions')))
    setattr(point, field_name, [draw(st.floats(-0.1, 0.1)) for _ in range(size)])


def _effort(draw, traj, facts):
    point = _any_point(draw, traj)
    point.effort = draw(st.lists(any_float(), min_size=1, max_size=len(traj.joint_names) + 2))


def _no_points(draw, traj, facts):
    traj.points = []


def _no_joints(draw, traj, facts):
    traj.joint_names = []
    for p in traj.points:
        p.positions = []
        p.velocities = []


def _moving_at_the_end(draw, traj, facts):
    last = traj.points[-1]
    v = [0.0] * len(traj.joint_names)
    v[draw(st.integers(0, len(v) - 1))] = draw(st.one_of(
        st.floats(1e-6, 10.0), st.floats(-10.0, -1e-6), st.sampled_from((1e300, -1e300))))
    last.velocities = v


def _stamp_in_the_past(draw, traj, facts):
    """A stamp whose end lies in the past (1970 and on, well before now)."""
    traj.header.stamp = Time(sec=draw(st.integers(1, 1_000_000_000)),
                             nanosec=draw(st.integers(0, 999_999_999)))


def _stamp_far_ahead(draw, traj, facts):
    """A stamp further ahead than the bridge's max_start_delay (60 s by default) and than a
    prediction may take (the planner's prediction.max_time, 600 s by default)."""
    ahead = draw(st.floats(700.0, 1e9))  # drawn alone: hypothesis replays draws, not clocks
    traj.header.stamp = to_time(min(time.time() + ahead, INT32[1]))


def _enormous(draw, traj, facts, points: int = ENORMOUS_POINTS):
    """Thousands of well-formed points, then one non-finite value in the last."""
    count = draw(st.integers(points // 10, points))
    first = traj.points[0]
    t0 = first.time_from_start.sec + first.time_from_start.nanosec * 1e-9
    positions = list(first.positions) or [0.0]  # an earlier defect may have emptied them
    traj.points = [JointTrajectoryPoint(positions=positions,
                                        time_from_start=to_duration(t0 + 0.01 * i))
                   for i in range(count)]
    values = list(positions)
    values[draw(st.integers(0, len(values) - 1))] = math.nan
    traj.points[-1].positions = values


#: Defects that make a trajectory malformed (each alone is enough for the controller or the
#: bridge to refuse it).
TRAJECTORY_DEFECTS = {
    'non-finite value': _non_finite,
    'beyond the URDF limits': _beyond_limits,
    'times not increasing': _times_not_increasing,
    'negative times': _negative_time,
    'duplicated joint': _joints_duplicated,
    'unknown joint': _joint_unknown,
    'missing joint': _joint_missing,
    'extra joint': _joint_extra,
    'ragged arrays': _ragged,
    'effort without an effort interface': _effort,
    'no points': _no_points,
    'no joints': _no_joints,
    'moving at the end': _moving_at_the_end,
    'stamp in the past': _stamp_in_the_past,
    'stamp far ahead': _stamp_far_ahead,
    'enormous': _enormous,
}


#: Defects of the header stamp: read in the bridge's clock, so not defects of a prediction
#: request (whose stamp is in the twin's clock, and any start within prediction.max_time may
#: be asked about).
STAMP_DEFECTS = ('stamp in the past', 'stamp far ahead')


@dataclass
class Malformed:
    """A malformed input and the defects that make it so (for the report of a failure)."""

    defects: list[str]
    trajectory: JointTrajectory
    path_tolerance: list[JointTolerance] = field(default_factory=list)
    goal_tolerance: list[JointTolerance] = field(default_factory=list)
    goal_time_tolerance: Duration = field(default_factory=Duration)

    def __repr__(self) -> str:
        t = self.trajectory
        sizes = [(len(p.positions), len(p.velocities), len(p.accelerations), len(p.effort))
                 for p in t.points[:6]]
        times = [(p.time_from_start.sec, p.time_from_start.nanosec) for p in t.points[:6]]
        return (f'Malformed({self.defects}, joints={list(t.joint_names)}, '
                f'points={len(t.points)}, sizes={sizes}, times={times}, '
                f'stamp=({t.header.stamp.sec}, {t.header.stamp.nanosec}), '
                f'first={list(t.points[0].positions) if t.points else None}, '
                f'tolerances={len(self.path_tolerance)}/{len(self.goal_tolerance)}, '
                f'goal_time=({self.goal_time_tolerance.sec}, '
                f'{self.goal_time_tolerance.nanosec}))')


@st.composite
def malformed_trajectory(draw, facts: RobotFacts, enormous_points: int = ENORMOUS_POINTS,
                         defects: Sequence[str] | None = None) -> Malformed:
    """A well-formed trajectory spoilt by one to three defects (``defects``: only these)."""
    traj = draw(base_trajectory(facts))
    names = draw(st.lists(st.sampled_from(sorted(defects or TRAJECTORY_DEFECTS)), min_size=1,
                          max_size=3, unique=True))
    # The defects that empty the trajectory come last: the others need points and joints
    names.sort(key=lambda n: n in ('no points', 'no joints'))
    for name in names:
        if not traj.points or not traj.joint_names:
            break
        if name == 'enormous':
            _enormous(draw, traj, facts, enormous_points)
        else:
            TRAJECTORY_DEFECTS[name](draw, traj, facts)
    return Malformed(names, traj)


@st.composite
def malformed_goal(draw, facts: RobotFacts, enormous_points: int = ENORMOUS_POINTS
                   ) -> Malformed:
    """A FollowJointTrajectory goal: a malformed trajectory, tolerances of every sign."""
    goal = draw(malformed_trajectory(facts, enormous_points))
    goal.path_tolerance = draw(tolerances(facts))
    goal.goal_tolerance = draw(tolerances(facts))
    goal.goal_time_tolerance = draw(any_duration())
    return goal


@st.composite
def malformed_move_to(draw, facts: RobotFacts) -> tuple[str, MoveTo.Goal]:
    """A MoveTo goal with a defect: joints or positions malformed, out of limits, a
    velocity_scaling outside (0, 1], or a pose with non-finite numbers."""
    n = len(facts.joints)
    home = list(facts.home)
    defect = draw(st.sampled_from(('non-finite position', 'unknown joint', 'ragged',
                                   'duplicated joint', 'beyond the URDF limits',
                                   'velocity_scaling', 'non-finite pose')))
    goal = MoveTo.Goal(joint_names=list(facts.joints), positions=home, velocity_scaling=0.5)
    if defect == 'non-finite position':
        goal.positions[draw(st.integers(0, n - 1))] = draw(
            st.sampled_from((math.nan, math.inf, -math.inf)))
    elif defect == 'unknown joint':
        goal.joint_names[draw(st.integers(0, n - 1))] = draw(
            st.text(max_size=20).filter(lambda s: s not in facts.joints))
    elif defect == 'ragged':
        size = draw(st.integers(1, 2 * n).filter(lambda k: k != n))
        goal.positions = (home * 2)[:size]
    elif defect == 'duplicated joint':
        i, k = draw(st.permutations(range(n)))[:2]
        goal.joint_names[k] = goal.joint_names[i]
    elif defect == 'beyond the URDF limits':
        j = draw(st.integers(0, n - 1))
        excess = draw(st.one_of(st.floats(1e-3, 10.0), st.just(1e300)))
        goal.positions[j] = facts.upper[j] + excess if draw(st.booleans()) \
            else facts.lower[j] - excess
    elif defect == 'velocity_scaling':
        goal.velocity_scaling = draw(st.one_of(
            st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0,
                                                                  exclude_min=True),
            st.sampled_from((math.nan, math.inf, -math.inf))))
    else:
        goal.joint_names, goal.positions = [], []
        p, q = goal.pose.pose.position, goal.pose.pose.orientation
        values = [draw(st.floats(-1.0, 1.0)) for _ in range(7)]
        values[draw(st.integers(0, 6))] = draw(st.sampled_from((math.nan, math.inf, -math.inf)))
        p.x, p.y, p.z, q.x, q.y, q.z, q.w = values
    return defect, goal


@st.composite
def malformed_start_state(draw, facts: RobotFacts) -> tuple[str, JointState]:
    """A start state for predict_trajectory with a defect: non-finite, ragged or unknown."""
    state = JointState(name=list(facts.joints), position=list(facts.home))
    defect = draw(st.sampled_from(('non-finite position', 'ragged', 'unknown joints')))
    if defect == 'non-finite position':
        state.position[draw(st.integers(0, len(facts.joints) - 1))] = draw(
            st.sampled_from((math.nan, math.inf, -math.inf)))
    elif defect == 'ragged':
        state.position = state.position[:draw(st.integers(0, len(facts.joints) - 1))]
    else:
        state.name = [draw(st.text(min_size=1, max_size=10).filter(
            lambda s: s not in facts.joints)) for _ in facts.joints]
    return defect, state


def malformed_prediction(facts: RobotFacts, enormous_points: int = ENORMOUS_POINTS
                         ) -> st.SearchStrategy[tuple[JointTrajectory, JointState | None]]:
    """A predict_trajectory request (trajectory, start state) with a defect: a malformed
    trajectory (its stamp aside) from the twin's state, or a well-formed one from a malformed
    start state."""
    defects = [d for d in TRAJECTORY_DEFECTS if d not in STAMP_DEFECTS]
    return st.one_of(
        malformed_trajectory(facts, enormous_points, defects).map(
            lambda m: (m.trajectory, None)),
        st.tuples(base_trajectory(facts), malformed_start_state(facts).map(lambda c: c[1])))


def switch_request() -> st.SearchStrategy[str]:
    """A target the bridge does not have (any text but sim/hardware/shadow), or hardware and
    shadow while the hardware is not armed."""
    return st.one_of(st.sampled_from(('hardware', 'shadow', 'Hardware ', 'hw', '')),
                     st.text(max_size=30).filter(lambda s: s.strip().lower() != 'sim'))


# --- judging ------------------------------------------------------------------------------------

@dataclass
class Verdict:
    """What one malformed input got: refused (with which code and reason) and whether anything
    moved."""

    channel: str
    refused: bool
    reason: str
    code: int | None = None
    moved: str = ''  # which world moved, by how much; '' when nothing did

    @property
    def ok(self) -> bool:
        return self.refused and bool(self.reason.strip()) and not self.moved


class MotionWatch:
    """The largest distance of each world's joints from where they were at :meth:`reset`,
    over every joint state since: any motion between two checks is caught."""

    def __init__(self, node: Node, topics: dict[str, str], joints: Sequence[str]) -> None:
        self.joints = list(joints)
        self._lock = threading.Lock()
        self._reference: dict[str, np.ndarray] = {}
        self._latest: dict[str, np.ndarray] = {}
        self._largest: dict[str, float] = {}
        self._subs = [node.create_subscription(
            JointState, topic, lambda msg, w=world: self._on_state(w, msg), SYSTEM_DEFAULT_QOS)
            for world, topic in topics.items()]
        self._node = node
        self.worlds = list(topics)

    def _on_state(self, world: str, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if any(j not in index for j in self.joints):
            return
        q = np.array([msg.position[index[j]] for j in self.joints])
        with self._lock:
            self._latest[world] = q
            ref = self._reference.get(world)
            if ref is not None:
                self._largest[world] = max(self._largest.get(world, 0.0),
                                           float(np.abs(q - ref).max()))

    def ready(self) -> bool:
        with self._lock:
            return all(w in self._latest for w in self.worlds)

    def reset(self) -> None:
        """Watch from the worlds' current positions on."""
        with self._lock:
            self._reference = dict(self._latest)
            self._largest = {w: 0.0 for w in self._latest}

    def moved(self, tolerance: float = MOVED_TOLERANCE) -> str:
        """'' if no world moved beyond ``tolerance`` since the reset, else which and how far."""
        with self._lock:
            return ', '.join(f'{w} by {d:.4f} rad' for w, d in sorted(self._largest.items())
                             if d > tolerance)

    def close(self) -> None:
        for sub in self._subs:
            self._node.destroy_subscription(sub)


class BridgeLog:
    """The bridge's own log lines (from /rosout): the reason behind a rejected goal or an
    ignored trajectory, which the driver interface has no field for."""

    def __init__(self, node: Node, logger: str) -> None:
        self.logger = logger
        self._lines: list[str] = []
        self._lock = threading.Lock()
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self._node = node
        self._sub = node.create_subscription(Log, '/rosout', self._on_log, qos)

    def _on_log(self, msg: Log) -> None:
        if msg.name == self.logger:
            with self._lock:
                self._lines.append(msg.msg)

    def mark(self) -> int:
        with self._lock:
            return len(self._lines)

    def wait_line(self, since: int, prefixes: Sequence[str], timeout: float) -> str:
        """The first line after ``since`` that starts with one of ``prefixes`` ('' if none
        came within ``timeout``)."""
        found = ''

        def arrived() -> bool:
            nonlocal found
            with self._lock:
                found = next((line for line in self._lines[since:]
                              if line.startswith(tuple(prefixes))), '')
            return bool(found)
        wait_for(arrived, timeout, poll=0.005)
        return found

    def close(self) -> None:
        self._node.destroy_subscription(self._sub)


def bridge_logger(names: TwinNames) -> str:
    """The bridge's logger name as /rosout carries it (its node name at the root)."""
    return names.bridge.strip('/').replace('/', '.')


class GraphFuzzer:
    """Sends malformed inputs into a running twin graph and judges each one.

    The graph's worlds must be at rest (the watch takes their positions as the reference).
    """

    def __init__(self, commander: TwinCommander, joints: Sequence[str], stack: Stack,
                 answer_timeout: float = 30.0) -> None:
        self.commander = commander
        self.stack = stack
        self.node = commander.node
        self.names = commander.names
        self.answer_timeout = answer_timeout
        n = self.names
        self.watch = MotionWatch(self.node, {'sim': n.sim_joint_states,
                                             'hardware': n.hardware_joint_states}, joints)
        self.log = BridgeLog(self.node, bridge_logger(n))
        self._topic = self.node.create_publisher(
            JointTrajectory, n.joint_trajectory,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._move_to = SpinSafeActionClient(self.node, MoveTo, n.move_to)
        self.sent = 0

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Joint states of both worlds, the topic's subscriber, move_to's server answering."""
        return (wait_for(self.watch.ready, timeout)
                and wait_for(lambda: self._topic.get_subscription_count() > 0, timeout)
                and wait_until_heard(self.node, MoveTo, self.names.move_to, timeout)
                and wait_until_heard(self.node, FollowJointTrajectory,
                                     self.commander.client.action_name, timeout))

    def close(self) -> None:
        self.watch.close()
        self.log.close()
        self.node.destroy_publisher(self._topic)
        self._move_to.destroy()

    def dead(self) -> str:
        """'' while every node of the graph runs, else how the first dead one ended."""
        dead = self.stack.dead()
        return dead[0].describe_exit() if dead else ''

    def _judged(self, channel: str, refused: bool, reason: str,
                code: int | None = None) -> Verdict:
        self.sent += 1
        return Verdict(channel, refused, reason, code, self.watch.moved())

    def goal(self, goal: Malformed) -> Verdict:
        """FollowJointTrajectory: rejected (as upstream; the bridge logs why), or ABORTED with
        INVALID_GOAL and the reason (a start time or a goal the twin refuses)."""
        mark = self.log.mark()
        request = FollowJointTrajectory.Goal(
            trajectory=goal.trajectory, path_tolerance=goal.path_tolerance,
            goal_tolerance=goal.goal_tolerance, goal_time_tolerance=goal.goal_time_tolerance)
        accepted, status, result = self._action_round(self.commander.client.action, request)
        if accepted is None:
            return self._judged('goal', False, 'no answer from the bridge')
        if not accepted:
            reason = self.log.wait_line(mark, ('Goal rejected',), self.answer_timeout)
            return self._judged('goal', True, reason)
        if result is None:
            return self._judged('goal', False, 'accepted, no result')
        return self._judged('goal', result.error_code == Result.INVALID_GOAL,
                            result.error_string, result.error_code)

    def _action_round(self, action, request) -> tuple[bool | None, int, object]:
        """(accepted, status, result) of one goal; None where no answer came in time (a goal
        left without a result is cancelled)."""
        sent = action.send_goal_async(request)
        if not wait_for(sent.done, self.answer_timeout, poll=0.002):
            return None, 0, None
        handle = sent.result()
        if not handle.accepted:
            return False, 0, None
        result = handle.get_result_async()
        if not wait_for(result.done, self.answer_timeout, poll=0.002):
            handle.cancel_goal_async()
            return True, 0, None
        response = result.result()
        return True, response.status, response.result

    def topic(self, trajectory: JointTrajectory) -> Verdict:
        """joint_trajectory: dropped, the bridge logs why (there is no reply on a topic)."""
        mark = self.log.mark()
        self._topic.publish(trajectory)
        reason = self.log.wait_line(mark, ('Trajectory ignored', 'Goal rejected'),
                                    self.answer_timeout)
        return self._judged('topic', bool(reason), reason)

    def move_to(self, goal: MoveTo.Goal) -> Verdict:
        """move_to: ABORTED with INVALID_GOAL and the reason, before anything is planned."""
        accepted, status, result = self._action_round(self._move_to, goal)
        if accepted is None or (accepted and result is None):
            return self._judged('move_to', False, 'no answer from the planner')
        if not accepted:
            return self._judged('move_to', True, 'goal rejected')
        return self._judged('move_to', result.error_code == Result.INVALID_GOAL,
                            result.error_string, result.error_code)

    def predict(self, trajectory: JointTrajectory,
                start_state: JointState | None = None) -> Verdict:
        """predict_trajectory: answered 'unsafe' with INVALID_GOAL and the reason."""
        request = PredictTrajectory.Request(trajectory=trajectory)
        if start_state is not None:
            request.start_state = start_state
        verdict = self.commander.call(PredictTrajectory, self.names.predict_trajectory, request,
                                      self.answer_timeout).verdict
        refused = not verdict.safe and verdict.predicted_error_code == Result.INVALID_GOAL
        return self._judged('predict', refused, verdict.summary, verdict.predicted_error_code)

    def switch(self, target: str) -> Verdict:
        """switch_target to a target that is not there (or not armed): refused, saying why."""
        reply = self.commander.call(SwitchTarget, self.names.switch_target,
                                    SwitchTarget.Request(target=target), self.answer_timeout)
        refused = not reply.success and reply.active_target == 'sim'
        return self._judged('switch', refused, reply.message)


# --- the graph's health -------------------------------------------------------------------------

def rss_bytes(pid: int) -> int:
    """Resident memory of a process (0 once it is gone)."""
    try:
        with open(f'/proc/{pid}/status') as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def graph_rss(stack: Stack) -> dict[str, int]:
    """Resident memory of each node process of a running graph, by node name."""
    return {p.name: rss_bytes(p.popen.pid) for p in stack.processes}
