"""core/physics.py is the only module that calls PyBullet (DESIGN.md), so a second physics
backend can replace it: no other source file imports pybullet, calls it, or reaches through a
world to its PyBullet client."""
from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / 'src' / 'reverse_digital_twin'
ALLOWED = {PACKAGE / 'core' / 'physics.py'}
#: `import pybullet`, `from pybullet...`, `pybullet.x`, `bullet_client`, and `<...world>.client`
#: / `.client.` on a physics world (other objects have unrelated `.client` attributes: an
#: action server's goal handle, a TrajectoryClient).
PATTERNS = [
    re.compile(r'^\s*(import|from)\s+pybullet(_utils)?\b', re.M),
    re.compile(r'(?<![\w.])pybullet\.'),
    re.compile(r'\bbullet_client\b'),
    re.compile(r'\b\w*world\.client\b', re.I),
    re.compile(r'\.client\.(stepSimulation|get[A-Z]\w*|set[A-Z]\w*|reset[A-Z]\w*|calculate\w+'
               r'|changeDynamics|loadURDF|saveState|restoreState|removeState)\b'),
]


def offenders(root: Path = PACKAGE) -> list[str]:
    """'file:line: text' of every PyBullet use outside the allowed files."""
    out = []
    for path in sorted(root.rglob('*.py')):
        if path in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(p.search(line) for p in PATTERNS):
                out.append(f'{path.relative_to(root.parent)}:{number}: {line.strip()}')
    return out


def test_only_core_physics_calls_pybullet():
    found = offenders()
    assert not found, 'PyBullet used outside core/physics.py:\n' + '\n'.join(found)


def test_the_scan_finds_a_use(tmp_path):
    (tmp_path / 'sneaky.py').write_text('import pybullet\nc = self.world.client.getJointState\n'
                                        'self.sim.client.stepSimulation()\n')
    (tmp_path / 'fine.py').write_text('import pybullet_data\nhandle.client.request\n')
    found = offenders(tmp_path)
    assert len(found) == 3 and all('sneaky.py' in f for f in found), found
