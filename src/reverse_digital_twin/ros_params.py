"""A node's parameter sources, as rcl reads them from ``--ros-args`` (no rclpy needed).

What decides a node's final parameters (rcl 9 ``arguments.c`` and rclpy's ``node.cpp``):

- every ``--params-file`` and ``-p name:=value`` of the command line goes, in the order it
  appears, into one table of node-name patterns; a ``-p`` rule is filed under ``/**``;
- a pattern already in the table keeps its place (new values replace old ones inside it);
- the node walks the table in that order and each pattern that matches its fully qualified name
  overwrites what earlier ones set (``/*`` is one namespace level, ``/**`` any number).

launch_ros (0.28) turns ``parameters=[file, {...}]`` into ``--params-file file --params-file
tmp``, where ``tmp`` holds the dict under the node's fully qualified name, or under ``/**`` when
the node has no namespace (:func:`overrides_key`). The runner passes the same
(:func:`parameter_arguments`), so both give every node the same parameters: the robot YAML, then
the graph's overrides, which win unless the YAML has a ``/**`` section (that entry comes first,
so its node-specific sections would beat overrides filed under it: our robot files have none).
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import yaml

#: One parameter source: a parameter file path, or a dict of overrides for the node.
ParameterSource = Union[str, Mapping[str, Any]]


def _plain(value: Any) -> Any:
    """Tuples and nested mappings as YAML-safe lists and dicts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def overrides_key(namespace: str, name: str) -> str:
    """The section launch_ros files a node's dict parameters under: its fully qualified name,
    or ``/**`` when no namespace is given (launch_ros calls the name "not fully specified")."""
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else '/**'


def overrides_yaml(key: str, overrides: Mapping[str, Any]) -> str:
    """A parameter file giving `overrides` to the nodes matching `key`."""
    return yaml.safe_dump({key: {'ros__parameters': _plain(overrides)}},
                          default_flow_style=False)


def overrides_file(key: str, overrides: Mapping[str, Any],
                   directory: Path | None = None) -> str:
    """Write :func:`overrides_yaml` once (named by its content) and return the path."""
    text = overrides_yaml(key, overrides)
    directory = directory or Path(tempfile.gettempdir()) / f'rdt_params_{os.getuid()}'
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    path = directory / f'params_{digest}.yaml'
    if not path.is_file():
        tmp = path.with_suffix(f'.{os.getpid()}.tmp')
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


def parameter_arguments(sources: Sequence[ParameterSource], key: str,
                        directory: Path | None = None) -> list[str]:
    """``--params-file`` arguments for the sources, in order, as launch_ros builds them
    (`key`: :func:`overrides_key` of the node)."""
    args: list[str] = []
    for source in sources:
        path = source if isinstance(source, str) else overrides_file(key, source, directory)
        args += ['--params-file', path]
    return args


def parameter_rules(argv: Sequence[str]) -> list[tuple[str, str]]:
    """The parameter sources of a command line, in order: ('file', path) or ('rule', 'n:=v').

    Only arguments inside ``--ros-args`` sections count (up to ``--`` or the next section).
    """
    rules: list[tuple[str, str]] = []
    in_ros = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == '--ros-args':
            in_ros = True
        elif arg == '--':
            in_ros = False
        elif in_ros and i + 1 < len(argv):
            if arg == '--params-file':
                rules.append(('file', argv[i + 1]))
                i += 1
            elif arg in ('-p', '--param'):
                rules.append(('rule', argv[i + 1]))
                i += 1
        i += 1
    return rules


def _flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def _file_sections(data: Mapping[str, Any], path: str = '') -> list[tuple[str, dict[str, Any]]]:
    """(node pattern, flattened parameters) of a parameter file; namespaces may nest."""
    sections = []
    for key, value in data.items():
        if not isinstance(value, Mapping):
            continue
        name = f'{path}/{str(key).strip("/")}' if path else str(key)
        if 'ros__parameters' in value:
            sections.append((name, _flatten(value.get('ros__parameters') or {})))
        else:
            sections += _file_sections(value, name)
    return sections


def _matches(pattern: str, fully_qualified_name: str) -> bool:
    """rclpy's node matching: "/*" is one level, "/**" any number of levels."""
    pattern = pattern if pattern.startswith('/') else f'/{pattern}'
    regex = pattern.replace('/*', r'(/\w+)')
    return re.fullmatch(regex, fully_qualified_name) is not None


def node_parameters(argv: Sequence[str], fully_qualified_name: str) -> dict[str, Any]:
    """The parameter overrides a node gets from its command line, with rcl's precedence."""
    table: dict[str, dict[str, Any]] = {}
    for kind, text in parameter_rules(argv):
        if kind == 'file':
            data = yaml.safe_load(Path(text).read_text()) or {}
            for pattern, values in _file_sections(data):
                table.setdefault(pattern, {}).update(values)
        else:
            name, _, value = text.partition(':=')
            node, sep, param = name.partition(':')
            pattern, name = (node, param) if sep else ('/**', name)
            table.setdefault(pattern, {})[name] = yaml.safe_load(value)
    merged: dict[str, Any] = {}
    for pattern, values in table.items():
        if _matches(pattern, fully_qualified_name):
            merged.update(values)
    return merged


def read_node_parameters(config: Path, node: str) -> dict[str, Any]:
    """The ros__parameters a node gets from a parameter file (wildcard sections included)."""
    from reverse_digital_twin.core.errors import ConfigError  # noqa: PLC0415
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f'{config}: cannot read parameters ({exc})') from None
    merged: dict[str, Any] = {}
    for key, section in data.items():
        if key in ('/**', node, f'/{node}', f'/**/{node}') and isinstance(section, dict):
            merged.update(_flatten(section.get('ros__parameters') or {}))
    return merged
