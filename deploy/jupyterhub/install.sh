#!/usr/bin/env bash
# Install what the class hub needs beyond PyPI into the project's virtual
# environment, never globally: configurable-http-proxy (JupyterHub's proxy,
# an npm package). Safe to run again: it does nothing when the proxy is there.
#
# Usage: bash deploy/jupyterhub/install.sh [VENV]   (default: .venv)
# The Python side (jupyterhub) comes from the project's `hub` extra:
#   .venv/bin/pip install -e ".[hub]"
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${1:-$repo/.venv}
version=${CHP_VERSION:-4.6.3}

if [ ! -x "$venv/bin/python" ]; then
    echo "error: no virtual environment at $venv; create it first (make install)." >&2
    exit 1
fi
link="$venv/bin/configurable-http-proxy"
prefix="$venv/share/configurable-http-proxy"
installed=$(cat "$prefix/node_modules/configurable-http-proxy/package.json" 2>/dev/null |
    "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null || true)
if [ -x "$link" ] && [ "$installed" = "$version" ] && "$link" --version >/dev/null 2>&1; then
    echo "configurable-http-proxy $installed is already in $venv"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "error: npm and node are needed to install configurable-http-proxy." >&2
    echo "On Debian or Ubuntu: sudo apt-get install nodejs npm" >&2
    exit 1
fi
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
    "configurable-http-proxy@$version"
ln -sfn "../share/configurable-http-proxy/node_modules/.bin/configurable-http-proxy" "$link"
echo "configurable-http-proxy $("$link" --version) installed in $venv"
