"""Collision-free joint motions in the twin's own world: OMPL finds the path, Ruckig times it.

:func:`plan_path` answers "how do the controller joints get from here to there without touching
anything": every state it keeps is checked in a private :class:`PhysicsWorld` (the twin's robot
and scene) against the scene objects with a clearance margin, against the robot's own links
(the pairs that touch by design left out, as the predictor does) and against the URDF limits;
every straight edge between states is checked at a fixed joint-space resolution. A straight
line that is free is taken as it is; otherwise OMPL's RRTConnect (the planner MoveIt uses by
default) searches, and the path is shortened by deterministic shortcutting.

:func:`time_parameterize` turns the path into the trajectory a joint_trajectory_controller
executes, within velocity, acceleration and jerk limits (Ruckig), in the shape
:func:`~reverse_digital_twin.core.motion.plan_joint_motion` returns, so that the two are
interchangeable. :func:`plan_motion` does both; :func:`solve_free_ik` turns a pose target into
a collision-free joint target.

A request that cannot be planned raises :class:`PlanningError` (a ValueError, as every refusal
of a motion request is) with a machine-readable ``reason`` and a message a person can act on.
Same inputs and seed, same path. No ROS; PyBullet only through PhysicsWorld.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import numpy as np

from reverse_digital_twin.core.goal import GoalPoint, TrajectoryGoal
from reverse_digital_twin.core.motion import DEFAULT_ACCELERATION_LIMIT, SAMPLE_PERIOD, per_joint
from reverse_digital_twin.core.motion import START_LIMIT_SLACK, check_timing, solve_ik
from reverse_digital_twin.core.physics import DistanceQuery, PhysicsWorld
from reverse_digital_twin.core.robot_model import JointLimits, RobotModel
from reverse_digital_twin.core.self_collision import HOME_CONTACT_MARGIN, ignored_link_pairs
from reverse_digital_twin.core.self_collision import rigid_groups

#: How close (m) a robot link may come to a scene object on a planned path. The controller
#: tracks the plan within its tolerances, not exactly: the margin keeps the executed motion
#: clear too. Near an end of the path that is closer already, the margin shrinks to that.
DEFAULT_CLEARANCE = 0.01
#: The same for two links of the robot (m): smaller, because arms fold links close to each
#: other in ordinary poses; not 0, because a path that grazes a link is executed with
#: tracking errors and the prediction would find the contact.
DEFAULT_SELF_CLEARANCE = 0.005
#: Edge checking resolution: consecutive checked states of a straight edge are at most this
#: far apart (Euclidean joint-space distance, rad | m), so no joint moves more between them.
#: A point of an arm of reach R moves at most about R x this between two checks, and passes
#: within half of that of one of them: for a ~1 m arm that is the default clearance, which so
#: also covers what lies between the checked states.
DEFAULT_RESOLUTION = 0.02
#: Wall time (s) the search may take before the request is refused as timed out.
DEFAULT_TIMEOUT = 2.0
#: Jerk limit of a generated motion (rad/s^3 | m/s^3): URDFs carry none. It gives about the
#: smoothness of plan_joint_motion's quintic at its default acceleration.
DEFAULT_JERK_LIMIT = 10.0
#: Velocity limit (rad/s | m/s, before velocity_scaling) of a joint whose URDF gives none:
#: Ruckig needs a finite one.
UNLIMITED_VELOCITY = 10.0
#: Random shortcut attempts after the greedy pass (a fixed count: the result does not depend
#: on the machine's speed, as a time-bounded simplification would).
SHORTCUT_ATTEMPTS = 12
#: A blended corner that comes too close is retried at half the speed this many times, then
#: passed at rest.
BLEND_HALVINGS = 2
#: Why a request was refused (PlanningError.reason).
REASONS = ('start_out_of_limits', 'start_in_collision', 'goal_out_of_limits',
           'goal_in_collision', 'unreachable', 'timed_out', 'no_path')


class PlanningError(ValueError):
    """A motion request that cannot be planned; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f'unknown planning failure reason {reason!r}; known: {REASONS}')
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Contact:
    """A robot link too close to a scene object or to another link of the robot."""

    link: str
    other: str
    distance: float  # m; negative: penetrating

    def describe(self, margin: float = 0.0) -> str:
        if self.distance < 0.0:
            return f'{self.link} penetrates {self.other} by {-self.distance * 1e3:.1f} mm'
        return (f'{self.link} is {self.distance * 1e3:.1f} mm from {self.other} (clearance '
                f'{margin * 1e3:.1f} mm)')


@dataclass(frozen=True)
class PlannedPath:
    """A collision-free joint-space path: straight segments between waypoints, each checked.

    ``object_clearance`` and ``self_clearance`` are the margins the path was checked with
    (the requested ones, or less near an end that is closer already).
    """

    joints: tuple[str, ...]
    waypoints: np.ndarray  # (m, n), the start first and the goal last
    resolution: float  # rad | m, edge checking resolution
    object_clearance: Mapping[str, float]  # scene object -> m
    self_clearance: float  # m
    planning_time: float  # wall s
    searched: bool  # False: the straight line was free; True: OMPL searched
    seed: int

    @property
    def length(self) -> float:
        """Joint-space length (Euclidean, rad | m)."""
        return float(np.sum(np.linalg.norm(np.diff(self.waypoints, axis=0), axis=1)))


# --- the world as the planner sees it ----------------------------------------------------------

def _rigid_groups(model: RobotModel, moving: Iterable[str]) -> dict[str, int]:
    """Link -> group id; links in one group keep their relative pose while only the joints in
    ``moving`` move (every other joint, fixed or not, holds still during a plan)."""
    groups = rigid_groups(model, moving)
    number = {group: k for k, group in enumerate(sorted(set(groups.values()), key=sorted))}
    return {link: number[groups[link]] for link in model.links}


class CollisionChecker:
    """Is a state of the planned joints clear of the scene and of the robot itself?

    Built once per world and joint set. Only pairs whose distance can change while the planned
    joints move are measured: links that do not move (the root and what is rigidly attached
    to it) are never checked against the scene (the robot stands on something), and two links
    whose relative pose the planned joints do not change are never checked against each other.
    Link pairs that touch by design (adjacent links, and links closer than
    :data:`~reverse_digital_twin.core.self_collision.HOME_CONTACT_MARGIN` in the home pose)
    are left out, as the predictor leaves them out; so are ``allowed_contacts``.

    Args:
        world: a private world (the planner's), never the live twin's: the robot is moved in it.
        joints: the planned joints (the controller's); the others stay where they are.
        clearance: m, robot link to scene object (:data:`DEFAULT_CLEARANCE`).
        self_clearance: m, robot link to robot link (:data:`DEFAULT_SELF_CLEARANCE`).
        allowed_contacts: (robot link, other) fnmatch patterns that are not collisions, as the
            predictor's ``allowed_contacts``.
        home: joint positions in which touching link pairs are exempt; None: the world's now.
    """

    def __init__(self, world: PhysicsWorld, joints: Sequence[str],
                 clearance: float = DEFAULT_CLEARANCE,
                 self_clearance: float = DEFAULT_SELF_CLEARANCE,
                 allowed_contacts: Iterable[tuple[str, str]] = (),
                 home: Mapping[str, float] | None = None) -> None:
        model = world.model
        self.joints = list(joints)
        if not self.joints:
            raise ValueError('no joints to plan for')
        if len(set(self.joints)) != len(self.joints):
            raise ValueError(f'duplicated joint names in {self.joints}')
        movable = {j.name for j in model.movable_joints}
        unknown = [j for j in self.joints if j not in movable]
        if unknown:
            raise ValueError(f'joints {unknown} are not movable joints of robot {model.name!r}; '
                             f'its movable joints are {sorted(movable)}')
        for name, value in (('clearance', clearance), ('self_clearance', self_clearance)):
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'{name} must be a finite distance >= 0 m, got {value}')
        self.world = world
        self.clearance = float(clearance)
        self.self_clearance = float(self_clearance)
        self.allowed_contacts = tuple((str(a), str(b)) for a, b in allowed_contacts)
        with world.preserved_state():
            if home:
                world.reset_joints({j: float(q) for j, q in home.items() if j in movable})
            touching = [(a, b) for a, b, _ in world.link_pairs_within(HOME_CONTACT_MARGIN)]
        ignored = ignored_link_pairs(model, touching)
        group = _rigid_groups(model, self.joints)
        links = world.collision_links()  # links without a shape touch nothing
        self.link_pairs = tuple(
            (a, b) for k, a in enumerate(links) for b in links[k + 1:]
            if group[a] != group[b] and frozenset((a, b)) not in ignored
            and not self._allowed(a, b) and not self._allowed(b, a))
        fixed = group[model.root_link]
        self.moving_links = tuple(link for link in links if group[link] != fixed)

    @property
    def object_links(self) -> dict[str, tuple[str, ...]]:
        """Scene object -> the moving links checked against it: the world's objects now (an
        obstacle added to the world since counts)."""
        return {obj: tuple(link for link in self.moving_links if not self._allowed(link, obj))
                for obj in self.world.object_ids}

    def _allowed(self, link: str, other: str) -> bool:
        return any(fnmatchcase(link, a) and fnmatchcase(other, b)
                   for a, b in self.allowed_contacts)

    def query(self, object_clearance: Mapping[str, float], self_clearance: float
              ) -> DistanceQuery:
        """The world's prepared check for these margins (m; an object without one gets the
        checker's clearance), as the world is now."""
        objects = self.object_links
        margins = {o: float(object_clearance.get(o, self.clearance)) for o in objects}
        return self.world.distance_query(self.link_pairs, self_clearance, objects, margins)

    def default_query(self) -> DistanceQuery:
        """The check with the checker's own margins."""
        return self.query({}, self.self_clearance)

    def contact_query(self) -> DistanceQuery:
        """The check for contact (margins 0)."""
        return self.query({o: 0.0 for o in self.object_links}, 0.0)

    def place(self, q: np.ndarray) -> None:
        """Put the planned joints at ``q`` (no dynamics)."""
        self.world.place_joints(self.joints, q.tolist())

    def violation(self, q: np.ndarray, query: DistanceQuery | None = None) -> Contact | None:
        """The first pair closer than its margin with the joints at ``q`` (default margins:
        the checker's), or None when ``q`` is clear."""
        self.place(q)
        found = self.world.first_closer(query or self.default_query())
        return None if found is None else Contact(*found)

    def contact(self, q: np.ndarray) -> Contact | None:
        """The first penetrating pair at ``q`` (margins 0), or None."""
        return self.violation(q, self.contact_query())

    def distances(self, q: np.ndarray, max_distance: float) -> list[Contact]:
        """Every checked pair within ``max_distance`` (m) at ``q``, closest first."""
        self.place(q)
        found = self.world.query_distances(self.contact_query(), max_distance)
        return sorted((Contact(*f) for f in found), key=lambda c: c.distance)

    def segment_violation(self, a: np.ndarray, b: np.ndarray, resolution: float,
                          query: DistanceQuery | None = None
                          ) -> tuple[np.ndarray, Contact] | None:
        """The first state found too close on the straight edge a -> b (ends excluded: they
        are checked on their own), checked at ``resolution`` in bisection order (a collision
        in the middle is found after few checks), or None when the edge is clear."""
        query = query or self.default_query()
        steps = math.ceil(float(np.linalg.norm(b - a)) / resolution - 1e-9)
        for k in _bisection_order(steps):
            q = a + (b - a) * (k / steps)
            found = self.violation(q, query)
            if found is not None:
                return q, found
        return None


def _bisection_order(steps: int) -> list[int]:
    """Interior indices 1..steps-1, middle first, then the middles of the halves, ..."""
    out: list[int] = []
    spans = [(0, steps)]
    while spans:
        following = []
        for lo, hi in spans:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            out.append(mid)
            following += [(lo, mid), (mid, hi)]
        spans = following
    return out


# --- planning ------------------------------------------------------------------------------------

def _limits_for(world: PhysicsWorld, joints: Sequence[str],
                limits: Mapping[str, JointLimits] | None) -> list[JointLimits]:
    by_name = dict(limits) if limits else {j.name: j.limits for j in world.model.movable_joints}
    unknown = [j for j in joints if j not in by_name]
    if unknown:
        raise ValueError(f'no limits for joints {unknown}; known joints: {sorted(by_name)}')
    return [by_name[j] for j in joints]


def _positions(values: Sequence[float], joints: Sequence[str], what: str) -> np.ndarray:
    q = np.asarray(values, dtype=float).reshape(-1)
    if len(q) != len(joints):
        raise ValueError(f'{len(joints)} joints {list(joints)} but {len(q)} {what} positions')
    bad = [j for j, v in zip(joints, q) if not math.isfinite(v)]
    if bad:
        raise ValueError(f'{what} position of joints {bad} is not finite')
    return q


def _check_limits(start: np.ndarray, goal: np.ndarray, joints: Sequence[str],
                  lims: Sequence[JointLimits]) -> np.ndarray:
    """The start clamped into the limits (solver noise at a limit stop); refusals otherwise."""
    for j, q, lim in zip(joints, goal, lims):
        if not lim.lower <= q <= lim.upper:
            raise PlanningError('goal_out_of_limits',
                                f'goal position of joint {j} is {q:.4f}, outside its URDF '
                                f'limits [{lim.lower:.4f}, {lim.upper:.4f}]')
    for j, q, lim in zip(joints, start, lims):
        if not lim.lower - START_LIMIT_SLACK <= q <= lim.upper + START_LIMIT_SLACK:
            raise PlanningError('start_out_of_limits',
                                f'start position of joint {j} is {q:.4f}, outside its URDF '
                                f'limits [{lim.lower:.4f}, {lim.upper:.4f}]')
    return np.array([min(max(q, lim.lower), lim.upper) for q, lim in zip(start, lims)])


def _margins(checker: CollisionChecker, ends: Sequence[np.ndarray]
             ) -> tuple[dict[str, float], float]:
    """The checker's margins, each shrunk to what the path's ends leave (never below 0): a
    robot resting 4 mm from the table may still leave it, and reach a goal 4 mm above it."""
    objects = {o: checker.clearance for o in checker.object_links}
    own = checker.self_clearance
    reach = max([checker.clearance, own])
    for q in ends:
        for c in checker.distances(q, reach):
            # a hair less than measured: the end itself passes the check it set
            if c.other in objects:
                objects[c.other] = max(0.0, min(objects[c.other], c.distance - 1e-6))
            else:
                own = max(0.0, min(own, c.distance - 1e-6))
    return objects, own


def _seed_ompl(seed: int) -> None:
    """OMPL seeds every random generator it makes from one global seed; setting it again
    restarts that sequence (OMPL then logs an error that is not true here: kept quiet)."""
    import ompl.util as ou  # noqa: PLC0415 - heavy, only for planning
    ou.setLogLevel(ou.LOG_NONE)
    try:
        ou.RNG.setSeed(int(seed) % 2147483646 + 1)  # OMPL takes seeds > 0
    finally:
        ou.setLogLevel(ou.LOG_WARN)  # its progress messages would flood a node's output


def _search(checker: CollisionChecker, query: DistanceQuery, start: np.ndarray,
            goal: np.ndarray, lims: Sequence[JointLimits], resolution: float, budget: float,
            timeout: float, seed: int) -> np.ndarray:
    """RRTConnect from start to goal in the box of the joint limits, for ``budget`` s (what
    is left of the request's ``timeout``); its waypoints (m, n)."""
    import ompl.base as ob  # noqa: PLC0415 - heavy, only for planning
    import ompl.geometric as og  # noqa: PLC0415

    n = len(start)
    _seed_ompl(seed)
    space = ob.RealVectorStateSpace(n)
    bounds = ob.RealVectorBounds(n)
    for k, lim in enumerate(lims):
        # A continuous joint gets a turn of room around both ends (no wrap-around).
        lo = lim.lower if math.isfinite(lim.lower) else min(start[k], goal[k]) - math.pi
        hi = lim.upper if math.isfinite(lim.upper) else max(start[k], goal[k]) + math.pi
        bounds.setLow(k, lo)
        bounds.setHigh(k, hi)
    space.setBounds(bounds)
    space.setLongestValidSegmentFraction(min(1.0, resolution / space.getMaximumExtent()))
    setup = og.SimpleSetup(space)
    failures: list[BaseException] = []

    def valid(state) -> bool:
        try:
            return checker.violation(np.array(state[0:n]), query) is None
        except BaseException as exc:  # noqa: BLE001 - re-raised after the search
            failures.append(exc)
            return False

    setup.setStateValidityChecker(valid)
    a, b = space.allocState(), space.allocState()
    a[0:n] = [float(v) for v in start]
    b[0:n] = [float(v) for v in goal]
    setup.setStartAndGoalStates(a, b)
    setup.setPlanner(og.RRTConnect(setup.getSpaceInformation()))
    status = setup.solve(float(budget))
    if failures:
        raise failures[0]
    exact = ob.PlannerStatus.PlannerStatusType.EXACT_SOLUTION
    kind = status.getStatus()
    if kind != exact:
        timed_out = kind in (ob.PlannerStatus.PlannerStatusType.TIMEOUT,
                             ob.PlannerStatus.PlannerStatusType.APPROXIMATE_SOLUTION)
        del setup, space, a, b
        if timed_out:
            raise PlanningError('timed_out', f'no collision-free path found within '
                                f'{timeout:.2f} s (RRTConnect, seed {seed}): the goal may be '
                                'enclosed by obstacles; allow more time or choose another goal')
        raise PlanningError('no_path', f'OMPL found no path: {status.asString()}')
    path = setup.getSolutionPath()
    waypoints = np.array([path.getState(i)[0:n] for i in range(path.getStateCount())])
    del path, setup, space, a, b
    waypoints[0], waypoints[-1] = start, goal
    return waypoints


def _shorten(checker: CollisionChecker, query: DistanceQuery, waypoints: np.ndarray,
             resolution: float, seed: int) -> np.ndarray:
    """Fewer, shorter straight segments: a greedy pass (from each kept waypoint, jump to the
    farthest one in straight sight), random shortcuts between points on the path, greedy again.
    A fixed number of steps from a seeded generator: same path in, same path out."""
    def free(a: np.ndarray, b: np.ndarray) -> bool:
        return checker.segment_violation(a, b, resolution, query) is None

    def greedy(points: list[np.ndarray]) -> list[np.ndarray]:
        kept, i = [points[0]], 0
        while i < len(points) - 1:
            j = len(points) - 1
            while j > i + 1 and not free(points[i], points[j]):
                j -= 1
            kept.append(points[j])
            i = j
        return kept

    points = greedy(list(waypoints))
    rng = np.random.default_rng(seed)
    for _ in range(SHORTCUT_ATTEMPTS):
        if len(points) < 3:
            break
        lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
        ends = np.concatenate([[0.0], np.cumsum(lengths)])
        s1, s2 = np.sort(rng.uniform(0.0, ends[-1], 2))
        i1 = int(np.searchsorted(ends, s1, side='right')) - 1
        i2 = int(np.searchsorted(ends, s2, side='right')) - 1
        if i1 == i2 or i2 >= len(points) - 1 or lengths[i1] <= 0.0 or lengths[i2] <= 0.0:
            continue
        a = points[i1] + (points[i1 + 1] - points[i1]) * ((s1 - ends[i1]) / lengths[i1])
        b = points[i2] + (points[i2 + 1] - points[i2]) * ((s2 - ends[i2]) / lengths[i2])
        if checker.violation(a, query) is None and checker.violation(b, query) is None \
                and free(a, b):
            points = points[:i1 + 1] + [a, b] + points[i2 + 1:]
    points = greedy(points)
    # A shortcut's end can land within a hair of a waypoint: drop such near-duplicates.
    out = [points[0]]
    for q in points[1:-1]:
        if np.linalg.norm(q - out[-1]) > 1e-6:
            out.append(q)
    out.append(points[-1])
    return np.array(out)


def plan_path(world: PhysicsWorld, start: Sequence[float], goal: Sequence[float],
              joints: Sequence[str], limits: Mapping[str, JointLimits] | None = None, *,
              clearance: float = DEFAULT_CLEARANCE,
              self_clearance: float = DEFAULT_SELF_CLEARANCE,
              resolution: float = DEFAULT_RESOLUTION, timeout: float = DEFAULT_TIMEOUT,
              seed: int = 0, allowed_contacts: Iterable[tuple[str, str]] = (),
              checker: CollisionChecker | None = None) -> PlannedPath:
    """A collision-free path of ``joints`` from ``start`` to ``goal`` in ``world``.

    The ends are checked first (limits, contact), so that a request that cannot succeed is
    refused at once with the reason; the straight line is taken when it is clear; otherwise
    RRTConnect searches for at most ``timeout`` s and the path found is shortened. The world is
    left as it was.

    Args:
        world: a private world (e.g. the planner's inverse-kinematics world).
        start, goal: (n,) positions in ``joints`` order (rad | m).
        joints: the planned joints; the world's other joints stay where they are.
        limits: per joint; default the URDF's.
        clearance, self_clearance, allowed_contacts: see :class:`CollisionChecker` (ignored
            when ``checker`` is given: its own apply).
        resolution: edge checking resolution (rad | m), :data:`DEFAULT_RESOLUTION`.
        timeout: wall s to find a path (the checks of the ends and of the straight line
            included; the shortening after it is a fixed amount of work).
        seed: the same seed gives the same path.
        checker: one built before for this world and these joints (saves rebuilding it).

    Raises:
        PlanningError: 'start_out_of_limits', 'goal_out_of_limits', 'start_in_collision',
            'goal_in_collision', 'timed_out' or 'no_path'.
        ValueError: malformed input (sizes, non-finite numbers, unknown joints).
    """
    began = time.perf_counter()
    joints = list(joints)
    if checker is None:
        checker = CollisionChecker(world, joints, clearance, self_clearance, allowed_contacts)
    elif checker.world is not world or checker.joints != joints:
        raise ValueError('checker was built for another world or other joints')
    if not (math.isfinite(resolution) and resolution > 0.0):
        raise ValueError(f'resolution must be a positive number (rad), got {resolution}')
    if not (math.isfinite(timeout) and timeout > 0.0):
        raise ValueError(f'timeout must be a positive number of s, got {timeout}')
    start_q = _positions(start, joints, 'start')
    goal_q = _positions(goal, joints, 'goal')
    lims = _limits_for(world, joints, limits)
    start_q = _check_limits(start_q, goal_q, joints, lims)
    with world.preserved_state():
        for q, what in ((start_q, 'start'), (goal_q, 'goal')):
            hit = checker.contact(q)
            if hit is not None:
                advice = 'move the robot clear first' if what == 'start' \
                    else 'choose a goal clear of it'
                raise PlanningError(f'{what}_in_collision',
                                    f'the {what} state is in collision: {hit.describe()}; '
                                    f'{advice}')
        objects, own = _margins(checker, (start_q, goal_q))
        query = checker.query(objects, own)
        searched = checker.segment_violation(start_q, goal_q, resolution, query) is not None
        if searched:
            budget = max(timeout - (time.perf_counter() - began), 1e-3)
            waypoints = _search(checker, query, start_q, goal_q, lims, resolution, budget,
                                timeout, seed)
            waypoints = _shorten(checker, query, waypoints, resolution, seed)
        else:
            waypoints = np.array([start_q, goal_q])
    return PlannedPath(tuple(joints), waypoints, float(resolution), objects, own,
                       time.perf_counter() - began, searched, int(seed))


# --- time parameterisation -----------------------------------------------------------------------

@dataclass
class _Segment:
    """One Ruckig trajectory between two waypoints, and when it starts."""

    trajectory: object  # ruckig.Trajectory
    start_time: float
    straight: bool  # rest to rest, phase-synchronised: on the checked straight edge

    @property
    def duration(self) -> float:
        return float(self.trajectory.duration)

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, v, a = self.trajectory.at_time(min(max(t - self.start_time, 0.0), self.duration))
        return np.array(p), np.array(v), np.array(a)


def _ruckig_segment(q0: np.ndarray, v0: np.ndarray, q1: np.ndarray, v1: np.ndarray,
                    vmax: np.ndarray, amax: np.ndarray, jmax: np.ndarray) -> object | None:
    """Time-optimal jerk-limited motion from (q0, v0, a=0) to (q1, v1, a=0), or None."""
    import ruckig  # noqa: PLC0415 - only for planning

    n = len(q0)
    inp = ruckig.InputParameter(n)
    inp.current_position, inp.current_velocity = q0.tolist(), v0.tolist()
    inp.current_acceleration = [0.0] * n
    inp.target_position, inp.target_velocity = q1.tolist(), v1.tolist()
    inp.target_acceleration = [0.0] * n
    inp.max_velocity, inp.max_acceleration = vmax.tolist(), amax.tolist()
    inp.max_jerk = jmax.tolist()
    # Rest to rest, phase synchronisation moves every joint in proportion: a straight line.
    still = not np.any(v0) and not np.any(v1)
    inp.synchronization = ruckig.Synchronization.Phase if still else \
        ruckig.Synchronization.Time
    trajectory = ruckig.Trajectory(n)
    result = ruckig.Ruckig(n).calculate(inp, trajectory)
    return trajectory if result == ruckig.Result.Working else None


def _pass_velocities(points: np.ndarray, vmax: np.ndarray, amax: np.ndarray) -> np.ndarray:
    """A velocity to pass each inner waypoint with (first and last: 0).

    Per joint: 0 where it turns back or rests on either side; else at most its velocity
    limit and what it can brake from within the shorter neighbouring segment, scaled down by
    how sharply the path turns (cosine of the turn angle; 0 from a right angle on).
    """
    out = np.zeros_like(points)
    for k in range(1, len(points) - 1):
        d_in, d_out = points[k] - points[k - 1], points[k + 1] - points[k]
        cos_turn = float(np.dot(d_in, d_out) / (np.linalg.norm(d_in) * np.linalg.norm(d_out)))
        if cos_turn <= 0.0:
            continue
        same = np.sign(d_in) * np.sign(d_out) > 0
        shorter = np.minimum(np.abs(d_in), np.abs(d_out))
        speed = np.minimum(vmax, np.sqrt(amax * shorter)) * cos_turn
        out[k] = np.where(same, np.sign(d_in) * speed, 0.0)
    return out


def _timed_segments(points: np.ndarray, passing: np.ndarray, vmax: np.ndarray,
                    amax: np.ndarray, jmax: np.ndarray) -> list[_Segment] | None:
    segments, t = [], 0.0
    for k in range(len(points) - 1):
        trajectory = _ruckig_segment(points[k], passing[k], points[k + 1], passing[k + 1],
                                     vmax, amax, jmax)
        if trajectory is None:
            return None
        segments.append(_Segment(trajectory, t, not np.any(passing[k])
                                 and not np.any(passing[k + 1])))
        t += float(trajectory.duration)
    return segments


def _segment_problem(segment: _Segment, checker: CollisionChecker, query: DistanceQuery,
                     lims: Sequence[JointLimits], resolution: float, amax: np.ndarray) -> bool:
    """Does a blended (curved) segment leave the limits or come too close to something?

    Limits from Ruckig's exact position extrema. States are checked at most ``resolution``
    apart, as on a straight edge: from a state with speed |v| (Euclidean, joint space) the
    next is dt later where |v| dt + |amax| dt^2 / 2 = resolution, which bounds the distance
    covered whatever the joints do within their acceleration limits."""
    trajectory = segment.trajectory
    for extremum, lim in zip(trajectory.position_extrema, lims):
        if extremum.min < lim.lower or extremum.max > lim.upper:
            return True
    reach = float(np.linalg.norm(amax))
    t, end = 0.0, segment.duration
    velocity = trajectory.at_time(0.0)[1]
    while t < end:
        speed = math.hypot(*velocity)
        t = min(end, t + (math.sqrt(speed * speed + 2.0 * reach * resolution) - speed) / reach)
        position, velocity, _ = trajectory.at_time(t)
        if checker.violation(np.array(position), query) is not None:
            return True
    return False


def time_parameterize(path: PlannedPath, limits: Mapping[str, JointLimits],
                      velocity_scaling: float = 0.5,
                      acceleration_limit: float | Mapping[str, float] =
                      DEFAULT_ACCELERATION_LIMIT,
                      jerk_limit: float | Mapping[str, float] = DEFAULT_JERK_LIMIT,
                      min_duration: float = 0.5, sample_period: float = SAMPLE_PERIOD,
                      checker: CollisionChecker | None = None) -> TrajectoryGoal:
    """The path as a rest-to-rest trajectory within velocity, acceleration and jerk limits.

    Why this way: Ruckig computes time-optimal jerk-limited motions between two states, but
    its community version takes no intermediate waypoints (it would send them to a web
    service). So each segment is one Ruckig motion, from the state the previous one ends in
    (acceleration 0) to the next waypoint. Rest to rest with phase synchronisation, a segment
    stays exactly on the straight edge the planner checked; passing a waypoint at speed
    (:func:`_pass_velocities`) cuts its corner, so such a blended segment is checked again
    like a path (limits, clearance, at the path's resolution) with ``checker``, and where it
    fails its waypoints are passed at rest. Without a checker every waypoint is passed at
    rest, which is always safe. TOPP-RA would time the path faster but limits no jerk.

    The output has :func:`~reverse_digital_twin.core.motion.plan_joint_motion`'s shape:
    samples every ``sample_period`` with positions, velocities and accelerations (so the
    controller's quintic segments reproduce the motion), the first at ``sample_period``, the
    last exactly the goal at rest at the end (at least ``min_duration``).

    Args:
        path: from :func:`plan_path`.
        limits: per joint (URDF velocity limits).
        velocity_scaling: fraction of the URDF velocity limits, in (0, 1].
        acceleration_limit, jerk_limit: one for all joints or per joint name.
        min_duration: shortest motion (s).
        sample_period: waypoint spacing (s).
        checker: the one the path was planned with, to allow blended corners.

    Raises:
        ValueError: bad limits or settings; RuntimeError if Ruckig fails on a rest-to-rest
            segment (not expected within valid limits).
    """
    joints = list(path.joints)
    check_timing(joints, limits, velocity_scaling, min_duration, sample_period)
    lims = [limits[j] for j in joints]
    vmax = np.array([velocity_scaling * (lim.velocity if 0.0 < lim.velocity < math.inf
                                         else UNLIMITED_VELOCITY) for lim in lims])
    amax = per_joint(acceleration_limit, joints, 'acceleration_limit')
    jmax = per_joint(jerk_limit, joints, 'jerk_limit')
    points = np.asarray(path.waypoints, dtype=float)
    n = len(joints)
    if checker is not None and (checker.joints != joints):
        raise ValueError('checker was built for other joints than the path')
    passing = _pass_velocities(points, vmax, amax) if checker is not None \
        else np.zeros_like(points)
    segments = _timed_segments(points, passing, vmax, amax, jmax)
    if checker is not None and np.any(passing):
        query = checker.query(path.object_clearance, path.self_clearance)
        verdicts: dict[tuple, bool] = {}  # a segment's check, by its end velocities

        def problem(k: int, segment: _Segment) -> bool:
            key = (k, passing[k].tobytes(), passing[k + 1].tobytes())
            if key not in verdicts:
                verdicts[key] = _segment_problem(segment, checker, query, lims,
                                                 path.resolution, amax)
            return verdicts[key]

        checked = False
        slowed = np.zeros(len(points), dtype=int)  # halvings per waypoint
        with checker.world.preserved_state():
            # Each round halves the speed at the waypoints of a failed segment, and stops them
            # after BLEND_HALVINGS halvings.
            for _ in range((BLEND_HALVINGS + 1) * len(points)):
                if segments is None:
                    break
                bad = [k for k, s in enumerate(segments) if not s.straight and problem(k, s)]
                if not bad:
                    checked = True
                    break
                for k in {i for b in bad for i in (b, b + 1)}:
                    slowed[k] += 1
                    passing[k] *= 0.0 if slowed[k] > BLEND_HALVINGS else 0.5
                segments = _timed_segments(points, passing, vmax, amax, jmax)
        if not checked:
            segments = _timed_segments(points, np.zeros_like(points), vmax, amax, jmax)
    if segments is None:
        raise RuntimeError('Ruckig could not time a rest-to-rest segment of the path')
    duration = sum(s.duration for s in segments)
    goal = points[-1].tolist()
    rest = [0.0] * n
    end = max(duration, min_duration, sample_period)
    out: list[GoalPoint] = []
    index = 0
    k = 1
    # Samples every period; one closer than half a period to the end is left to the goal's.
    while k * sample_period < end - 0.5 * sample_period:
        t = k * sample_period
        k += 1
        if t >= duration:
            out.append(GoalPoint(round(t, 9), goal, rest, rest))
            continue
        while index < len(segments) - 1 and \
                t > segments[index].start_time + segments[index].duration:
            index += 1
        q, v, a = segments[index].at(t)
        out.append(GoalPoint(round(t, 9), q.tolist(), v.tolist(), a.tolist()))
    out.append(GoalPoint(round(end, 9), goal, rest, rest))
    return TrajectoryGoal(joint_names=joints, points=out)


# --- the two together, and pose targets ----------------------------------------------------------

def plan_motion(world: PhysicsWorld, start: Sequence[float], goal: Sequence[float],
                joints: Sequence[str], limits: Mapping[str, JointLimits] | None = None, *,
                velocity_scaling: float = 0.5,
                acceleration_limit: float | Mapping[str, float] = DEFAULT_ACCELERATION_LIMIT,
                jerk_limit: float | Mapping[str, float] = DEFAULT_JERK_LIMIT,
                min_duration: float = 0.5, sample_period: float = SAMPLE_PERIOD,
                clearance: float = DEFAULT_CLEARANCE,
                self_clearance: float = DEFAULT_SELF_CLEARANCE,
                resolution: float = DEFAULT_RESOLUTION, timeout: float = DEFAULT_TIMEOUT,
                seed: int = 0, allowed_contacts: Iterable[tuple[str, str]] = (),
                checker: CollisionChecker | None = None) -> TrajectoryGoal:
    """:func:`plan_path`, then :func:`time_parameterize` (corners blended where the checker
    allows): a drop-in for :func:`~reverse_digital_twin.core.motion.plan_joint_motion` that
    goes around obstacles. Arguments and errors: those two functions'."""
    joints = list(joints)
    if checker is None:
        checker = CollisionChecker(world, joints, clearance, self_clearance, allowed_contacts)
    path = plan_path(world, start, goal, joints, limits, resolution=resolution,
                     timeout=timeout, seed=seed, checker=checker)
    by_name = dict(limits) if limits else {j.name: j.limits for j in world.model.movable_joints}
    return time_parameterize(path, by_name, velocity_scaling, acceleration_limit, jerk_limit,
                             min_duration, sample_period, checker)


def _nearest_turn(world: PhysicsWorld, joints: Sequence[str], q: np.ndarray,
                  reference: np.ndarray) -> np.ndarray:
    """``q`` with each revolute joint moved by whole turns towards ``reference``, within its
    limits (the same pose of the robot)."""
    movable = {j.name: j for j in world.model.movable_joints}
    out = q.copy()
    for k, name in enumerate(joints):
        joint = movable[name]
        if joint.type not in ('revolute', 'continuous'):
            continue
        turns = round((reference[k] - q[k]) / (2.0 * math.pi))
        for t in sorted(range(turns - 1, turns + 2), key=lambda t: abs(t - turns)):
            value = q[k] + 2.0 * math.pi * t
            if joint.limits.lower <= value <= joint.limits.upper \
                    and abs(value - reference[k]) < abs(out[k] - reference[k]):
                out[k] = value
    return out


def solve_free_ik(world: PhysicsWorld, tip_link: str, position: Sequence[float],
                  orientation: Sequence[float] | None, joints: Sequence[str],
                  seed: Sequence[float], frame: str | None = None, attempts: int = 6,
                  checker: CollisionChecker | None = None, **ik) -> np.ndarray:
    """Joint positions that put ``tip_link`` at a pose without touching anything.

    :func:`~reverse_digital_twin.core.motion.solve_ik` from ``seed`` (the current positions)
    first, then from starts drawn within the joint limits (a fixed sequence: the same question
    gets the same answer), until a solution is clear by the checker's margins; failing that,
    the first one that touches nothing. A revolute joint's solution is taken at the turn
    (2 pi apart) nearest its ``seed`` value that is within its limits, so a far start does not
    make the wrist spin a full turn.

    Raises:
        PlanningError: 'unreachable' (no attempt converged) or 'goal_in_collision' (every
            solution found touches something).
        ValueError: an unknown link, joint or frame, or bad numbers.
    """
    joints = list(joints)
    if checker is None:
        checker = CollisionChecker(world, joints)
    seed_q = _positions(seed, joints, 'seed')
    lims = _limits_for(world, joints, None)
    low = np.array([lim.lower if math.isfinite(lim.lower) else -math.pi for lim in lims])
    high = np.array([lim.upper if math.isfinite(lim.upper) else math.pi for lim in lims])
    rng = np.random.default_rng(0)
    starts = [np.clip(seed_q, low, high)] + [rng.uniform(low, high)
                                             for _ in range(max(attempts, 1) - 1)]
    found: list[tuple[np.ndarray, Contact | None]] = []  # solutions too close, their contact
    unreachable = ''
    for start in starts:
        try:
            q = solve_ik(world, tip_link, position, orientation, joints, start, frame=frame,
                         **ik)
        except ValueError as exc:
            if not str(exc).startswith('unreachable'):
                raise
            unreachable = unreachable or str(exc)
            continue
        q = _nearest_turn(world, joints, q, seed_q)
        with world.preserved_state():
            if checker.violation(q) is None:
                return q
            found.append((q, checker.contact(q)))
    clear = [q for q, hit in found if hit is None]
    if clear:
        return clear[0]
    if found:
        hit = found[0][1]
        raise PlanningError('goal_in_collision',
                            f'every joint solution for the pose of {tip_link} touches '
                            f'something ({len(found)} found; the first: '
                            f'{hit.describe() if hit else "too close"})')
    raise PlanningError('unreachable', f'{unreachable} (and from {len(starts) - 1} other '
                        'starts)' if unreachable else f'no joint solution for {tip_link}')
