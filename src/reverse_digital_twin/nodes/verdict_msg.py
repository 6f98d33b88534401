"""The twin's verdict (core.prediction.Verdict) as an rdt_interfaces/msg/Verdict."""
from __future__ import annotations

from geometry_msgs.msg import Point
from rdt_interfaces.msg import Collision, JointLimitViolation, Verdict as VerdictMsg
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from reverse_digital_twin.core.controller import ErrorCode
from reverse_digital_twin.core.prediction import Verdict
from reverse_digital_twin.nodes.ros_common import to_duration, to_time


def verdict_msg(verdict: Verdict, stamp: float) -> VerdictMsg:
    """Convert, with the predicted trajectory sampled every control cycle."""
    msg = VerdictMsg(safe=verdict.safe, summary='' if verdict.safe else verdict.summary,
                     max_tracking_error=float(verdict.max_tracking_error),
                     max_tracking_error_joint=verdict.max_tracking_error_joint,
                     duration=float(verdict.duration),
                     computation_time=float(verdict.computation_time))
    if verdict.outcome is not None:
        msg.predicted_error_code = int(verdict.outcome.error_code)
        msg.predicted_error_string = verdict.outcome.error_string
    elif verdict.rejected:
        msg.predicted_error_code = int(ErrorCode.INVALID_GOAL)
        msg.predicted_error_string = verdict.summary
    msg.collisions = [Collision(link=c.link, other=c.other, time=float(c.time),
                                position=Point(x=float(c.position[0]), y=float(c.position[1]),
                                               z=float(c.position[2])),
                                depth=float(c.depth)) for c in verdict.collisions]
    msg.limit_violations = [JointLimitViolation(joint=v.joint, kind=v.kind, time=float(v.time),
                                                value=float(v.value), limit=float(v.limit))
                            for v in verdict.limit_violations]
    joints = list(verdict.joints)
    if len(verdict.times):
        msg.final_state = JointState(name=joints, position=verdict.final_positions.tolist(),
                                     velocity=verdict.final_velocities.tolist())
        msg.final_state.header.stamp = to_time(stamp)
    msg.predicted_trajectory = JointTrajectory(joint_names=joints, points=[
        JointTrajectoryPoint(positions=p.tolist(), velocities=v.tolist(),
                             time_from_start=to_duration(max(float(t), 0.0)))
        for t, p, v in zip(verdict.times, verdict.positions, verdict.velocities)])
    return msg
