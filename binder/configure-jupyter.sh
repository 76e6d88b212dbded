#!/usr/bin/env bash
# Configure JupyterLab in the given environment for learners:
# nbgrader's assignment list and Validate button on, the instructor tools off,
# and no news or update pop-ups. The work is done by course_lib/setup.py
# (`python -m course_lib configure-jupyter`, which also runs on Windows); this
# wrapper is what Binder's postBuild calls.
# Usage: binder/configure-jupyter.sh [BIN_DIR]   (default: the python on PATH)
# COURSE_INSTRUCTOR=1 leaves the instructor tools on.
set -euo pipefail
bin=${1:-$(dirname "$(command -v python)")}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
"$bin/python" -m course_lib configure-jupyter --python "$bin/python"
