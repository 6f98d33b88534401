"""Fit the twin's unknowns to recorded hardware motion (``rdt calibrate <recording>``).

The unknowns are those of :class:`~reverse_digital_twin.core.perturbation.Perturbation`: the
payload mass at the tip, extra viscous damping and Coulomb friction per joint, the command
latency, and the encoder offsets. :func:`identify` minimises the error between the measured
joint positions and what the twin predicts when it replays the recorded commands
(:func:`~reverse_digital_twin.core.replay.replay`), with a bounded Levenberg-Marquardt
whose steps are ``scipy.optimize.lsq_linear``.
Every residual evaluation and every finite-difference column of the Jacobian is a batch of
independent replays, one per (segment, parameter set), that the caller runs in parallel
(``rdt calibrate`` in the planner's prediction workers). The encoder offsets enter the
measurement linearly and are solved in closed form inside every evaluation (the mean residual
per joint), so the nonlinear fit only carries the dynamic parameters and the latency.

A recording that cannot identify a parameter is refused with the reason
(:class:`UnidentifiableRecording`): too short, a joint that never moves, no commands, or a fit
whose uncertainty leaves a parameter undetermined. A parameter whose whole plausible range
changes the prediction by less than the measurement noise (friction under a stiff position
motor, say) is reported as not observable and kept at zero: it cannot matter to a prediction.
No rclpy here.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import lsq_linear

from reverse_digital_twin.core.errors import ConfigError
from reverse_digital_twin.core.perturbation import Perturbation
from reverse_digital_twin.core.replay import CommandLog, Segment, rms_per_joint

#: A joint "moves" in a recording when its commanded range exceeds this (rad or m).
MIN_JOINT_RANGE = 0.05
#: A recording needs at least this much motion in total (s) to fit a latency.
MIN_MOTION_TIME = 2.0
#: Residuals of the first moments of a segment are left out: the replay starts from a measured
#: (noisy, offset) state and needs a few physics steps to settle onto the motors' targets (s).
SETTLE_TIME = 0.05
#: The proposed divergence threshold: this many times the largest error of the calibrated
#: twin anywhere in the recording (so nothing the healthy arm did there would have tripped
#: it; twice, because the watch compares with a prediction made before the motion, from a
#: measured start and with the start time known to within the slack), but never below FLOOR
#: (a margin for what no recording showed: motions the excitation did not reach, loads it did
#: not carry; on the stand-in, 20 brisk shadow goals at the floor raised no alarm and a 25 kg
#: payload was caught 0.06 s into its goal).
THRESHOLD_FACTOR = 2.0
THRESHOLD_FLOOR = 0.010  # rad
#: The proposed time slack: this many control periods (the cycle the hardware's controller
#: takes a goal up in is not known in advance) plus three standard deviations of the fitted
#: latency.
SLACK_CYCLES = 2.0
#: Latencies tried before the fit (s): a control cycle or two at the usual 100-1000 Hz.
LATENCY_GRID = (0.0, 0.004, 0.008, 0.012, 0.016, 0.02, 0.03, 0.04, 0.06, 0.08)

Rollouts = Callable[[Sequence[tuple[Segment, Perturbation]]], list[np.ndarray]]


class UnidentifiableRecording(ConfigError):
    """The recording cannot identify what was asked; the message says why and what to record."""


@dataclass(frozen=True)
class Recording:
    """What calibration needs from a bag: the commands and the measured joint states."""

    commands: CommandLog
    state_times: np.ndarray  # (M,) s
    positions: np.ndarray  # (M, n) measured, in commands.joints order
    velocities: np.ndarray  # (M, n)

    @property
    def joints(self) -> tuple[str, ...]:
        return self.commands.joints

    @property
    def duration(self) -> float:
        return float(self.state_times[-1] - self.state_times[0]) if len(self.state_times) else 0.0

    @staticmethod
    def from_messages(joint_states: Sequence[tuple[float, Sequence[str], Sequence[float],
                                                   Sequence[float]]],
                      controller_states: Sequence[tuple[float, Sequence[str], Sequence[float],
                                                        Sequence[float], Sequence[float]]],
                      ) -> 'Recording':
        """Build from (stamp, names, positions, velocities) joint states and (stamp, joint names,
        output positions, velocities, efforts) controller states, in any order.

        Raises:
            UnidentifiableRecording: no commands, no states, or states lacking a commanded joint.
        """
        if not controller_states:
            raise UnidentifiableRecording(
                'the recording has no controller_state messages of the hardware controller: '
                'without the commands sent to the hardware nothing can be replayed (record '
                'its controller_state topic, as `rdt record` does by default)')
        if not joint_states:
            raise UnidentifiableRecording('the recording has no joint states of the hardware')
        controller_states = sorted(controller_states, key=lambda m: m[0])
        joints = tuple(controller_states[0][1])
        rows = [m for m in controller_states if tuple(m[1]) == joints]
        times, keep = [], []
        for m in rows:  # strictly increasing stamps: a repeated stamp is the same cycle
            if not times or m[0] > times[-1]:
                times.append(m[0])
                keep.append(m)

        def column(i: int) -> np.ndarray | None:
            if any(len(m[i]) != len(joints) for m in keep):
                return None
            return np.array([list(m[i]) for m in keep], dtype=float)
        commands = CommandLog(joints, np.array(times), column(2), column(3), column(4))
        states = sorted(joint_states, key=lambda m: m[0])
        t_out, q_out, v_out = [], [], []
        for stamp, names, q, v in states:
            index = {name: k for k, name in enumerate(names)}
            if any(j not in index for j in joints) or len(q) < len(names):
                continue
            if t_out and stamp <= t_out[-1]:
                continue
            t_out.append(stamp)
            q_out.append([q[index[j]] for j in joints])
            v_out.append([v[index[j]] for j in joints] if len(v) == len(names)
                         else [0.0] * len(joints))
        if len(t_out) < 10:
            raise UnidentifiableRecording(
                f'the recording\'s joint states do not carry the commanded joints {list(joints)}'
                ' (or fewer than 10 do): is it the hardware\'s joint_states topic?')
        return Recording(commands, np.array(t_out), np.array(q_out), np.array(v_out))


# --- segments -------------------------------------------------------------------------------

def split_segments(recording: Recording, max_length: float = 8.0, rest_speed: float = 0.02,
                   pad: float = 0.3, bridge: float = 0.5, max_gap: float = 0.05
                   ) -> list[Segment]:
    """The motions of the recording as segments to replay, each at most ``max_length`` s.

    A motion is where the measured speed exceeds ``rest_speed``; motions less than ``bridge``
    s apart are one. A segment starts ``pad`` s before its motion (at rest, so its start state
    is known to the replay) and ends ``pad`` s after it (the settling, and the rest that shows
    the offsets); it carries the commands from just before its start (the one in force then).
    Long rests are left out: they cost replay time and identify nothing the pads do not.
    Stamps more than ``max_gap`` s apart end a segment; the next starts after the gap.
    """
    t, q = recording.state_times, recording.positions
    if len(t) < 2:
        return []
    # speed over +-5 samples (~100 ms at 100 Hz): encoder noise differentiated per sample
    # would look like motion
    lo = np.maximum(np.arange(len(t)) - 5, 0)
    hi = np.minimum(np.arange(len(t)) + 5, len(t) - 1)
    span = np.maximum(t[hi] - t[lo], 1e-9)
    speed = np.max(np.abs(q[hi] - q[lo]), axis=1) / span
    moving = np.flatnonzero(speed >= rest_speed)
    if len(moving) == 0:
        return []
    intervals: list[list[float]] = []
    for i in moving:
        if intervals and t[i] - intervals[-1][1] <= bridge:
            intervals[-1][1] = t[i]
        else:
            intervals.append([t[i], t[i]])
    # A gap in the stamps (a stalled hardware clock re-based, a lost stretch) breaks the
    # replay's one-to-one map from stamps to physics steps: no segment spans one
    gaps = t[1:][np.diff(t) > max_gap]
    windows: list[tuple[float, float]] = []
    for start, end in intervals:
        start, end = max(t[0], start - pad), min(t[-1], end + pad)
        for gap in gaps[(gaps > start) & (gaps <= end)]:
            before = t[int(np.searchsorted(t, gap)) - 1]
            if before - start > 0.2:
                windows.append((start, before))
            start = gap
        while end - start > max_length:  # long motions: consecutive pieces
            windows.append((start, start + max_length))
            start += max_length
        windows.append((start, end))
    segments = []
    log = recording.commands
    for start, end in windows:
        a = int(np.searchsorted(t, start))
        b = int(np.searchsorted(t, end, side='right')) - 1
        if b - a < 10:
            continue
        first = max(0, int(np.searchsorted(log.times, t[a], side='right')) - 2)
        last_cmd = int(np.searchsorted(log.times, t[b], side='right'))
        if last_cmd - first < 3:
            continue
        segments.append(Segment(log.rows(first, last_cmd), float(t[a]), q[a].copy(),
                                recording.velocities[a].copy(), t[a:b + 1].copy(),
                                q[a:b + 1].copy()))
    return segments


# --- parameters -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Parameter:
    """One unknown of the nonlinear fit."""

    key: str  # 'payload_mass', 'command_latency', 'joint_damping.<joint>', ...
    unit: str
    scale: float  # a typical size: finite-difference step = 0.05 x scale, x_scale of the fit
    upper: float  # the plausible range is [0, upper]


def default_parameters(joints: Sequence[str], payload_upper: float = 20.0) -> list[Parameter]:
    params = [Parameter('payload_mass', 'kg', 1.0, payload_upper),
              Parameter('command_latency', 's', 0.005, 0.2)]
    params += [Parameter(f'joint_friction.{j}', 'N*m', 0.5, 20.0) for j in joints]
    params += [Parameter(f'joint_damping.{j}', 'N*m*s/rad', 0.5, 20.0) for j in joints]
    return params


def model_of(params: Sequence[Parameter], x: np.ndarray, base: Perturbation,
             offsets: dict[str, float] | None = None) -> Perturbation:
    """The hardware model with the parameters' values ``x`` (others from ``base``)."""
    scalars: dict[str, float] = {}
    maps: dict[str, dict[str, float]] = {'joint_damping': dict(base.joint_damping),
                                         'joint_friction': dict(base.joint_friction)}
    for p, value in zip(params, x):
        head, _, joint = p.key.partition('.')
        if joint:
            maps[head][joint] = float(value)
        else:
            scalars[head] = float(value)
    return Perturbation(payload_mass=scalars.get('payload_mass', base.payload_mass),
                        payload_link=base.payload_link,
                        command_latency=scalars.get('command_latency', base.command_latency),
                        joint_damping=maps['joint_damping'],
                        joint_friction=maps['joint_friction'],
                        joint_offsets=dict(offsets if offsets is not None
                                           else base.joint_offsets))


# --- the fit --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    key: str
    value: float
    uncertainty: float  # one standard deviation
    unit: str
    observable: bool  # False: below the noise over its whole range; kept at 0


@dataclass
class IdentificationResult:
    model: Perturbation  # the fitted hardware model, offsets included
    estimates: list[Estimate]
    rms_before: np.ndarray  # (n,) rad, the nominal model (latency as given)
    rms_after: np.ndarray
    noise: np.ndarray  # (n,) rad, residual std after the fit: the measurement noise floor
    threshold: float  # rad, proposed divergence threshold
    time_slack: float  # s, proposed divergence time slack
    evaluations: int
    wall_time: float
    notes: list[str] = field(default_factory=list)
    residuals_before: list[np.ndarray] = field(default_factory=list)  # per segment (M, n)
    residuals_after: list[np.ndarray] = field(default_factory=list)


def check_recording(recording: Recording, segments: Sequence[Segment]) -> None:
    """Refuse a recording that cannot identify the unknowns, saying what to record instead.

    Raises:
        UnidentifiableRecording: the reason, and `rdt calibrate --excite` as the remedy.
    """
    remedy = ('; record motions that move every joint, e.g. with `rdt calibrate --excite`')
    if recording.duration < MIN_MOTION_TIME:
        raise UnidentifiableRecording(
            f'the recording lasts {recording.duration:.1f} s, too short to identify anything '
            f'(at least {MIN_MOTION_TIME:g} s of motion){remedy}')
    moving = sum(s.duration for s in segments)
    if not segments or moving < MIN_MOTION_TIME:
        raise UnidentifiableRecording(
            f'the arm moves for {moving:.1f} s of the recording\'s {recording.duration:.1f} s: '
            f'the latency, damping and friction cannot be identified without motion{remedy}')
    log = recording.commands
    commanded = log.positions if log.positions is not None else None
    measured_range = np.ptp(recording.positions, axis=0)
    ranges = np.ptp(commanded, axis=0) if commanded is not None else measured_range
    still = [j for j, r in zip(recording.joints, np.maximum(ranges, measured_range))
             if r < MIN_JOINT_RANGE]
    if still:
        raise UnidentifiableRecording(
            f'joints {still} never move more than {MIN_JOINT_RANGE} rad in the recording: '
            f'their friction and damping cannot be identified{remedy}')


def identify(recording: Recording, rollouts: Rollouts, nominal: Perturbation | None = None,
             parameters: Sequence[Parameter] | None = None, max_evaluations: int = 12,
             progress: Callable[[str], None] | None = None) -> IdentificationResult:
    """Fit the hardware model to a recording.

    Args:
        recording: commands and measured joint states of the hardware.
        rollouts: runs a batch of (segment, model) replays, in parallel, returning each
            replay's predicted encoder positions (the caller owns the worker processes).
        nominal: the model before calibration (default: the twin's nominal model: nothing
            added, a latency of one 10 ms control cycle is *not* assumed: 0).
        parameters: the unknowns of the nonlinear fit (default :func:`default_parameters`).
        max_evaluations: cap on Jacobian evaluations of the fit.
        progress: called with a line of text after every step.

    Raises:
        UnidentifiableRecording: see :func:`check_recording`, or a fit that leaves a
            parameter undetermined.
    """
    wall0 = time.perf_counter()
    say = progress or (lambda line: None)
    joints = recording.joints
    nominal = nominal or Perturbation()
    params = list(parameters) if parameters is not None else default_parameters(joints)
    segments = split_segments(recording)
    check_recording(recording, segments)
    weights = [_weights(s) for s in segments]
    evaluations = 0

    def predict(models: Sequence[Perturbation]) -> list[list[np.ndarray]]:
        """Per model, the replay of every segment (offsets zero: solved in closed form)."""
        nonlocal evaluations
        batch = [(s, m) for m in models for s in segments]
        out = rollouts(batch)
        evaluations += len(batch)
        k = len(segments)
        return [out[i * k:(i + 1) * k] for i in range(len(models))]

    def residual_vector(preds: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(stacked weighted residuals with the best offsets removed, those offsets)."""
        diffs = [s.measured - p for s, p in zip(segments, preds)]
        total = sum((d * w[:, None]).sum(axis=0) for d, w in zip(diffs, weights))
        offsets = total / sum(w.sum() for w in weights)
        stacked = np.concatenate([((d - offsets) * w[:, None]).ravel()
                                  for d, w in zip(diffs, weights)])
        return stacked, offsets

    def zero_offsets(model: Perturbation) -> Perturbation:
        return Perturbation(payload_mass=model.payload_mass, payload_link=model.payload_link,
                            command_latency=model.command_latency,
                            joint_damping=model.joint_damping,
                            joint_friction=model.joint_friction)

    # before: the nominal model as the twin has it today (its own offsets: none)
    before_preds = predict([nominal])[0]
    before_res = [s.measured - p - np.array([nominal.joint_offsets.get(j, 0.0)
                                             for j in joints])
                  for s, p in zip(segments, before_preds)]
    rms_before = _pooled_rms(before_res, weights)
    say(f'nominal twin: RMS error {_mrad(rms_before)} mrad per joint '
        f'({len(segments)} segments, {sum(s.duration for s in segments):.1f} s of motion)')

    x0 = np.array([_initial(p, nominal) for p in params])
    scales = np.array([p.scale for p in params])
    steps = 0.05 * scales
    lower = np.zeros(len(params))
    upper = np.array([p.upper for p in params])
    x0 = np.clip(x0, lower, upper)
    base = zero_offsets(nominal)
    known: dict[str, float] = {}  # offsets found so far: the replays start from true states
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def fun(x: np.ndarray) -> np.ndarray:
        key = x.tobytes()
        if key not in cache:
            preds = predict([model_of(params, x, base, known)])[0]
            cache[key] = residual_vector(preds)
        return cache[key][0]

    # Which joint each stacked residual belongs to (segments are raveled (M, n) row-major)
    joint_of = np.concatenate([np.tile(np.arange(len(joints)), len(s.sample_times))
                               for s in segments])
    groups = _groups(params, joints)

    def jac(x: np.ndarray) -> np.ndarray:
        """Finite differences, one replay batch per scalar parameter and one per per-joint
        group (all joints of the group shifted at once, each column keeping only its own
        joint's residuals: a joint's friction or damping acts on that joint; the coupling
        through the arm's inertia under stiff motors is far below the noise)."""
        shifted = []
        for members in groups:
            xi = x.copy()
            for i in members:
                xi[i] = xi[i] + steps[i] if xi[i] + steps[i] <= upper[i] else xi[i] - steps[i]
            shifted.append(xi)
        preds = predict([model_of(params, xi, base, known) for xi in shifted])
        r0 = fun(x)
        J = np.zeros((len(r0), len(params)))
        for members, xi, p in zip(groups, shifted, preds):
            change = residual_vector(p)[0] - r0
            for i in members:
                column = change / (xi[i] - x[i])
                if len(members) > 1:
                    column = np.where(joint_of == joints.index(params[i].key.split('.', 1)[1]),
                                      column, 0.0)
                J[:, i] = column
        say(f'  fit step: RMS {1e3 * math.sqrt(np.mean(r0 ** 2)):.3f} mrad, '
            f'{evaluations} replays so far ({time.perf_counter() - wall0:.1f} s)')
        return J

    # The latency first, on a grid: the error is not convex in it far from the truth (a motion
    # delayed by a whole cycle resembles one advanced), and everything else depends on it.
    latency_index = next((i for i, p in enumerate(params) if p.key == 'command_latency'), None)
    if latency_index is not None:
        grid = [v for v in LATENCY_GRID if v <= upper[latency_index]]
        candidates = []
        for v in grid:
            xi = x0.copy()
            xi[latency_index] = v
            candidates.append(xi)
        evaluated = [residual_vector(p)
                     for p in predict([model_of(params, xi, base, known) for xi in candidates])]
        scores = [float(np.mean(r ** 2)) for r, _ in evaluated]
        best = int(np.argmin(scores))
        known = {j: float(o) for j, o in zip(joints, evaluated[best][1])}
        cache.clear()
        value = grid[best]
        if 0 < best < len(grid) - 1:  # the vertex of the parabola through the best three
            (a, fa), (b, fb), (c, fc) = [(grid[i], scores[i]) for i in (best - 1, best, best + 1)]
            denominator = (b - a) * (fb - fc) - (b - c) * (fb - fa)
            if denominator != 0:
                vertex = b - 0.5 * ((b - a) ** 2 * (fb - fc) - (b - c) ** 2 * (fb - fa)) \
                    / denominator
                value = float(min(max(vertex, a), c))
        x0[latency_index] = value
        say(f'latency search: {value * 1e3:.1f} ms (grid of {len(grid)}, '
            f'{time.perf_counter() - wall0:.1f} s)')
    x0 = np.clip(x0, lower + 1e-9, upper)

    # Bounded Levenberg-Marquardt: every step is scipy's bounded linear least squares on the
    # linearised, damped problem; a step is kept only if the replayed error drops.
    x = x0.copy()
    r = fun(x)
    cost = float(r @ r)
    damping = 1e-3
    J = np.zeros((len(r), len(params)))
    for _ in range(max_evaluations):
        J = jac(x)
        JS = J * scales  # in units of each parameter's scale
        improved = False
        for _ in range(4):
            A = np.vstack([JS, math.sqrt(damping) * np.diag(np.sqrt(
                np.maximum(np.sum(JS ** 2, axis=0), 1e-18)))])
            b = np.concatenate([-r, np.zeros(len(params))])
            step = lsq_linear(A, b, bounds=((lower - x) / scales, (upper - x) / scales)).x
            candidate = np.clip(x + step * scales, lower, upper)
            rc = fun(candidate)
            cc = float(rc @ rc)
            if cc < cost:
                improved = True
                gain = (cost - cc) / cost
                x, r, cost = candidate, rc, cc
                damping = max(damping / 10.0, 1e-7)
                break
            damping *= 10.0
        if not improved or gain < 1e-3:
            break
    residuals, offsets = residual_vector(predict([model_of(params, x, base, known)])[0])
    dof = max(1, len(residuals) - len(params) - len(joints))
    sigma2 = float(residuals @ residuals) / dof
    try:
        cov = np.linalg.pinv(J.T @ J) * sigma2
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    except np.linalg.LinAlgError:
        std = np.full(len(params), math.inf)
    # Observable: moving the parameter over its plausible range changes the prediction by more
    # than the noise (RMS over the recording)
    noise_rms = math.sqrt(sigma2)
    effect = np.sqrt(np.mean(J ** 2, axis=0)) * upper
    estimates, notes = [], []
    values = x.copy()
    for i, p in enumerate(params):
        observable = effect[i] > noise_rms
        if not observable:
            notes.append(f'{p.key}: not observable in this recording (its whole range '
                         f'[0, {p.upper:g}] {p.unit} moves the prediction by '
                         f'{effect[i] * 1e3:.3f} mrad RMS, below the noise '
                         f'{noise_rms * 1e3:.3f} mrad); kept at 0')
            values[i] = 0.0
        estimates.append(Estimate(p.key, float(values[i]), float(std[i]), p.unit, observable))
    weighted_n = sum(w.sum() for w in weights)
    offset_std = noise_rms / math.sqrt(max(weighted_n, 1.0))
    offsets = offsets + np.array([known.get(j, 0.0) for j in joints])
    offsets_map = {j: float(o) for j, o in zip(joints, offsets)}
    for j, o in offsets_map.items():
        estimates.append(Estimate(f'joint_offsets.{j}', o, offset_std, 'rad', True))
    fitted = model_of(params, values, base, offsets_map)
    latency_std = next((e.uncertainty for e in estimates if e.key == 'command_latency'), 0.0)
    if latency_std > 0.005:
        raise UnidentifiableRecording(
            f'the command latency is undetermined by this recording (±{latency_std * 1e3:.1f} '
            'ms): the arm must move briskly enough for a few ms of delay to show; record '
            'with `rdt calibrate --excite`')
    after_preds = predict([fitted])[0]  # replay() adds the fitted offsets
    after_res = [s.measured - p for s, p in zip(segments, after_preds)]
    rms_after = _pooled_rms(after_res, weights)
    noise = np.array([np.std(np.concatenate([r[w > 0][:, k] for r, w in zip(after_res, weights)]))
                      for k in range(len(joints))])
    threshold = max(THRESHOLD_FLOOR, THRESHOLD_FACTOR * float(
        np.max([np.max(np.abs(r[w > 0])) for r, w in zip(after_res, weights)])))
    period = float(np.median(np.diff(recording.commands.times)))
    time_slack = math.ceil((SLACK_CYCLES * period + 3.0 * latency_std) * 1e3) / 1e3
    say(f'calibrated twin: RMS error {_mrad(rms_after)} mrad per joint; proposed divergence '
        f'threshold {threshold * 1e3:.1f} mrad, time slack {time_slack * 1e3:.0f} ms')
    return IdentificationResult(fitted, estimates, rms_before, rms_after, noise, threshold,
                                time_slack, evaluations, time.perf_counter() - wall0, notes,
                                before_res, after_res)


def evaluate(recording: Recording, rollouts: Rollouts,
             models: Sequence[Perturbation]) -> list[np.ndarray]:
    """RMS error per joint (rad) of each model over a recording (held-out scoring)."""
    segments = split_segments(recording)
    if not segments:
        raise UnidentifiableRecording('the recording has no motion to score a model on')
    weights = [_weights(s) for s in segments]
    batch = [(s, m) for m in models for s in segments]
    out = rollouts(batch)
    k = len(segments)
    results = []
    for i, m in enumerate(models):
        preds = out[i * k:(i + 1) * k]
        res = [s.measured - p for s, p in zip(segments, preds)]  # replay() adds the offsets
        results.append(_pooled_rms(res, weights))
    return results


def _groups(params: Sequence[Parameter], joints: Sequence[str]) -> list[list[int]]:
    """Indices of the parameters shifted together in one Jacobian replay."""
    by_head: dict[str, list[int]] = {}
    groups: list[list[int]] = []
    for i, p in enumerate(params):
        head, _, joint = p.key.partition('.')
        if joint:
            by_head.setdefault(head, []).append(i)
        else:
            groups.append([i])
    return groups + list(by_head.values())


def _weights(segment: Segment) -> np.ndarray:
    """1 for samples that count, 0 for the settling moments at a segment's start."""
    return (segment.sample_times - segment.start_time >= SETTLE_TIME).astype(float)


def _pooled_rms(residuals: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
    total = sum(((r ** 2) * w[:, None]).sum(axis=0) for r, w in zip(residuals, weights))
    return np.sqrt(total / sum(w.sum() for w in weights))


def _initial(p: Parameter, nominal: Perturbation) -> float:
    head, _, joint = p.key.partition('.')
    if joint:
        return float(getattr(nominal, head).get(joint, 0.0))
    return float(getattr(nominal, head))


def _mrad(values: np.ndarray) -> str:
    return ' '.join(f'{v * 1e3:.2f}' for v in values)


__all__ = ['Recording', 'Segment', 'Parameter', 'Estimate', 'IdentificationResult',
           'UnidentifiableRecording', 'identify', 'evaluate', 'split_segments',
           'default_parameters', 'model_of', 'check_recording', 'rms_per_joint']
