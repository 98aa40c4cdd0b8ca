#!/usr/bin/env bash
# Creates .venv-mxnet: Apache MXNet 1.9.1, the peer of `gluonlite-bench mxnet`.
#
# MXNet 1.9.1 cannot share gluonlite's environment: it uses NumPy aliases removed in NumPy
# 1.24 (so it needs numpy==1.23.5, which has no wheels past Python 3.11), hence a virtual
# environment of its own built from a Python <= 3.11 found on PATH.
#
# Never fails the build: where the environment cannot be made (no suitable Python, no
# network, no wheel for this platform) it prints "SKIP: <reason>" and exits 0, and the
# benchmark's mxnet suite then skips with its own reason. It succeeds once, writing
# .venv-mxnet/.installed; later runs return at once.
#
# Environment: MXNET_VENV (default .venv-mxnet), MXNET_PYTHON (a specific interpreter).
set -u

venv=${MXNET_VENV:-.venv-mxnet}
marker="$venv/.installed"

if [ -f "$marker" ]; then
    echo "mxnet_env: $venv is ready ($(cat "$marker"))"
    exit 0
fi

skip() {
    echo "SKIP: MXNet 1.9.1 environment not created: $*" >&2
    exit 0
}

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    # The only MXNet 1.9.1 binary wheels on PyPI are manylinux x86_64 (and macOS x86_64,
    # which needs a Homebrew libomp we do not install here).
    *) skip "MXNet 1.9.1 publishes Linux x86_64 wheels only; this is $(uname -s)-$(uname -m)" ;;
esac

# Newest first: the first interpreter that is >= 3.8 and <= 3.11 and can make a venv wins.
find_python() {
    local candidates=()
    [ -n "${MXNET_PYTHON:-}" ] && candidates+=("$MXNET_PYTHON")
    candidates+=(python3.11 python3.10 python3.9 python3.8 python3)
    local py
    for py in "${candidates[@]}"; do
        command -v "$py" >/dev/null 2>&1 || continue
        if "$py" -c 'import sys, venv; sys.exit(not ((3, 8) <= sys.version_info[:2] <= (3, 11)))' \
                2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

python=$(find_python) || skip "no Python 3.8-3.11 with the venv module on PATH (MXNet 1.9.1" \
    "needs numpy==1.23.5, which has no wheels for Python 3.12+); set MXNET_PYTHON to one"

echo "mxnet_env: creating $venv with $python ($("$python" --version 2>&1))"
rm -rf "$venv"
"$python" -m venv "$venv" || skip "'$python -m venv $venv' failed"

# Quiet, no cache: the wheel is ~50 MB and is used only here.
if ! "$venv/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check \
        "mxnet==1.9.1" "numpy==1.23.5"; then
    rm -rf "$venv"
    skip "pip could not install mxnet==1.9.1 numpy==1.23.5 (no network or no wheel)"
fi

# Importing is the real test: the wheel links libgomp/libquadmath from the system.
if ! version=$("$venv/bin/python" -c 'import mxnet; print(mxnet.__version__)' 2>&1); then
    echo "$version" >&2
    rm -rf "$venv"
    skip "mxnet installed but does not import (see the error above)"
fi

echo "mxnet $version, $("$venv/bin/python" --version 2>&1)" > "$marker"
echo "mxnet_env: $venv is ready ($(cat "$marker"))"
