"""Where this package's files are, and how file names in configuration are resolved."""
from __future__ import annotations

import os
from pathlib import Path

from reverse_digital_twin.core.errors import ConfigError

PACKAGE = 'reverse_digital_twin'
_SOURCE_ROOT = Path(__file__).resolve().parents[3]


def share_dir() -> Path:
    """The package's share directory: the ament index when installed, else the checkout."""
    if os.environ.get('AMENT_PREFIX_PATH'):
        try:
            from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415
            installed = Path(get_package_share_directory(PACKAGE))
            if (installed / 'config').is_dir():
                return installed
        except (ImportError, LookupError, OSError, ValueError):
            pass
    return _SOURCE_ROOT


def resolve(name: str, what: str = 'file') -> Path:
    """Resolve a file name from configuration to an existing path.

    Accepted forms: an absolute path; ``pybullet_data:<relative>`` (the models shipped with
    pybullet); ``package://<pkg>/<relative>`` (a ROS package's share directory); or a path
    relative to the working directory or, failing that, to this package's share directory.
    """
    tried: list[Path] = []
    if name.startswith('pybullet_data:'):
        import pybullet_data  # noqa: PLC0415
        candidates = [Path(pybullet_data.getDataPath()) / name.split(':', 1)[1]]
    elif name.startswith('package://'):
        pkg, _, rel = name[len('package://'):].partition('/')
        if pkg == PACKAGE:
            candidates = [share_dir() / rel]
        else:
            try:
                from ament_index_python.packages import get_package_share_directory  # noqa
                candidates = [Path(get_package_share_directory(pkg)) / rel]
            except (ImportError, LookupError, OSError, ValueError) as exc:
                raise ConfigError(f'{what} {name!r}: cannot find ROS package {pkg!r} ({exc})') \
                    from None
    else:
        path = Path(name).expanduser()
        candidates = [path] if path.is_absolute() else [Path.cwd() / path, share_dir() / path]
    for candidate in candidates:
        tried.append(candidate)
        if candidate.is_file():
            return candidate
    raise ConfigError(f'{what} not found: {name!r} (looked at {", ".join(map(str, tried))})')
