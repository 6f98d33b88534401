# Source this to use the project's venv in a shell: `source tools/env.sh`.
# It puts the venv first on PATH and tells ament/CMake where the venv's ROS packages are.
_rdt_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_rdt_venv="${RDT_VENV:-$_rdt_root/.venv}"
if [ ! -x "$_rdt_venv/bin/python" ]; then
  echo "no venv at $_rdt_venv: run 'make setup' first" >&2
else
  export VIRTUAL_ENV="$_rdt_venv"
  export PATH="$_rdt_venv/bin:$PATH"
  export AMENT_PREFIX_PATH="$_rdt_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$_rdt_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  # Interface packages built into the venv (rdt_interfaces; control_msgs/tf2_msgs where the
  # distro lacks them) keep their libraries in $VENV/lib. The PyPI wheels find them by
  # themselves; next to a sourced ROS 2 distro this is what finds them.
  export LD_LIBRARY_PATH="$_rdt_venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
unset _rdt_root _rdt_venv
