#!/usr/bin/env bash
# speechbrain_ee: one entry point for set-up, the demo and the tests.
#   bash run.sh demo    # set up (first time), then the zero-download demo
#   bash run.sh test    # set up (first time), then the test suite
# Set-up creates .venv with the pinned versions of constraints.txt.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${SBEE_VENV:-.venv}

setup() {
    local stamp="$VENV/.sbee-installed"
    if [ -f "$stamp" ] && [ "$stamp" -nt constraints.txt ] && [ "$stamp" -nt setup.cfg ]; then
        return
    fi
    echo "==> creating $VENV and installing speechbrain_ee (first run: a few minutes)"
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
    touch "$stamp"
}

case "${1:-}" in
    setup) setup ;;
    demo) setup; shift; exec "$VENV/bin/python" -m speechbrain_ee.cli demo "$@" ;;
    test) setup; shift; exec "$VENV/bin/python" -m pytest "$@" ;;
    *) echo "usage: bash run.sh {demo|test|setup} [args...]" >&2; exit 2 ;;
esac
