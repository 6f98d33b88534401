"""Where this package's files are, and how file names in configuration are resolved."""
from __future__ import annotations

import os
import re
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


_MESH_FILENAME = re.compile(r'(<mesh\b[^>]*?\bfilename\s*=\s*)(["\'])(.*?)\2', re.S)


def mesh_file(name: str, urdf_dir: Path | None) -> Path | None:
    """The file a URDF's ``<mesh filename>`` names, or None if it cannot be found.

    ``file://`` and absolute paths as they are; ``package://<pkg>/<path>`` in the ROS
    package's share directory, else (as PyBullet reads it, e.g. pybullet_data's Panda) relative
    to the URDF's directory with or without ``<pkg>``; other relative names from the URDF's
    directory.
    """
    candidates: list[Path] = []
    if name.startswith('file://'):
        candidates.append(Path(name[len('file://'):]))
    elif name.startswith('package://'):
        try:
            return resolve(name, 'mesh')
        except ConfigError:
            pass
        rel = name[len('package://'):]
        if urdf_dir is not None:
            candidates += [urdf_dir / rel, urdf_dir / rel.partition('/')[2]]
    elif Path(name).is_absolute():
        candidates.append(Path(name))
    elif urdf_dir is not None:
        candidates.append(urdf_dir / name)
    return next((c.resolve() for c in candidates if c.is_file()), None)


def resolve_mesh_uris(urdf_xml: str, urdf_dir: Path | None) -> str:
    """The URDF text with every mesh it can find named by an absolute ``file://`` URI.

    A robot_description published this way is drawn by any viewer (rviz, the web view)
    whatever its working directory, also for URDFs whose ``package://`` names no ROS package
    (pybullet_data's). Meshes not found keep their names, for the viewer to report.
    """
    def absolute(match: re.Match) -> str:
        found = mesh_file(match.group(3), urdf_dir)
        uri = found.as_uri() if found is not None else match.group(3)
        return f'{match.group(1)}{match.group(2)}{uri}{match.group(2)}'
    return _MESH_FILENAME.sub(absolute, urdf_xml)
