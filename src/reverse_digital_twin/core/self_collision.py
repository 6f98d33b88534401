"""Which pairs of a robot's own links may touch: derived from the model, never listed by hand.

Self-collision checking needs the pairs that touch by design left out, or every prediction
would be refused: links joined by a joint overlap at the joint, and many URDFs have links that
touch already in the home pose (a cable duct, a flange, the finger pads of a closed gripper).
:func:`adjacent_link_pairs` finds the first kind from the kinematic tree, treating links joined
by fixed joints as one rigid body (so a flange's neighbour is adjacent to the link the flange is
bolted on); the second kind is measured in the home pose by the caller (the predictor, through
``PhysicsWorld.link_pairs_within``) and passed to :func:`ignored_link_pairs`.
Pure Python, no PyBullet.
"""
from __future__ import annotations

from collections.abc import Iterable

from reverse_digital_twin.core.robot_model import RobotModel

#: Link pairs closer than this in the home pose (m) never count as colliding with each other:
#: they touch by design, and PyBullet's margins would report them as soon as the arm moves.
HOME_CONTACT_MARGIN = 0.002

LinkPair = frozenset[str]


def rigid_groups(model: RobotModel, moving: Iterable[str] | None = None
                 ) -> dict[str, frozenset[str]]:
    """Link -> every link rigidly attached to it, itself included: through fixed joints, or,
    with ``moving``, through every joint not in it (what holds still while only those move)."""
    held = None if moving is None else set(moving)
    parent = {link: link for link in model.links}

    def find(link: str) -> str:
        while parent[link] != link:
            parent[link] = parent[parent[link]]
            link = parent[link]
        return link

    for joint in model.joints:
        rigid = joint.type == 'fixed' if held is None else joint.name not in held
        if rigid and joint.parent in parent and joint.child in parent:
            parent[find(joint.child)] = find(joint.parent)
    groups: dict[str, set[str]] = {}
    for link in model.links:
        groups.setdefault(find(link), set()).add(link)
    return {link: frozenset(groups[find(link)]) for link in model.links}


def adjacent_link_pairs(model: RobotModel) -> set[LinkPair]:
    """Pairs of links in one rigid body, or in two rigid bodies joined by a movable joint."""
    groups = rigid_groups(model)
    pairs: set[LinkPair] = set()
    for group in set(groups.values()):
        pairs.update(frozenset((a, b)) for a in group for b in group if a < b)
    for joint in model.joints:
        if joint.type == 'fixed' or joint.parent not in groups or joint.child not in groups:
            continue
        pairs.update(frozenset((a, b)) for a in groups[joint.parent]
                     for b in groups[joint.child] if a != b)
    return pairs


def ignored_link_pairs(model: RobotModel,
                       touching_at_home: Iterable[tuple[str, str]]) -> set[LinkPair]:
    """Adjacent pairs + the pairs given as touching (or nearly) in the home pose."""
    return adjacent_link_pairs(model) | {frozenset((a, b)) for a, b in touching_at_home
                                         if a != b}
