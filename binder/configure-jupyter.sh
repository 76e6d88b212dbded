#!/usr/bin/env bash
# Configure JupyterLab in the given environment for learners:
# nbgrader's assignment list and Validate button on, the instructor tools off,
# and no news or update pop-ups. Used by `make lab` and by Binder's postBuild.
# Usage: binder/configure-jupyter.sh [BIN_DIR]   (default: the jupyter on PATH)
set -euo pipefail
bin=${1:-$(dirname "$(command -v jupyter)")}
jupyter="$bin/jupyter"
prefix=$("$bin/python" -c 'import sys; print(sys.prefix)')

"$jupyter" server extension enable --sys-prefix nbgrader.server_extensions.assignment_list >/dev/null 2>&1
"$jupyter" server extension enable --sys-prefix nbgrader.server_extensions.validate_assignment >/dev/null 2>&1
"$jupyter" labextension enable --level=sys_prefix @jupyter/nbgrader:assignment-list \
    @jupyter/nbgrader:validate-assignment @jupyter/nbgrader:menu >/dev/null 2>&1
# Instructors use `make instructor-lab`, which turns these back on.
if [ "${COURSE_INSTRUCTOR:-0}" = "1" ]; then
    action=enable
else
    action=disable
fi
"$jupyter" labextension "$action" --level=sys_prefix @jupyter/nbgrader:formgrader \
    @jupyter/nbgrader:create-assignment @jupyter/nbgrader:course-list >/dev/null 2>&1

settings="$prefix/share/jupyter/lab/settings"
mkdir -p "$settings"
cat > "$settings/overrides.json" <<'JSON'
{
  "@jupyterlab/apputils-extension:notification": {
    "checkForUpdates": false,
    "fetchNews": "false"
  }
}
JSON
echo "JupyterLab configured in $prefix (nbgrader: assignment list + validate; instructor tools: ${action}d)"
