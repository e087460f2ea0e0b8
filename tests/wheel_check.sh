#!/usr/bin/env bash
# The installed wheel, not the checkout: build it, install it into a fresh virtual environment and run
# `nas search experiment=smoke`, `nas scale` and `nas export` from a temp folder, checking that the nas
# that ran is the one inside that environment. Offline and quick: no build isolation (setuptools comes
# from the project's venv) and the new environment borrows the project's dependencies (torch, Optuna, ...)
# through a .pth line instead of installing them again.
#
# Usage: tests/wheel_check.sh [PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
project=$PWD
python=${1:-.venv/bin/python}
python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python")
unset PYTHONPATH  # the checkout must not shadow the installed package
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NAS_CACHE="$work/cache"  # latency tables, data: not the user's cache

# Build from a copy, so the checkout gets no build/ or egg-info litter.
mkdir "$work/src"
cp -r pyproject.toml README.md nas search_spaces experiments "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w "$work/dist" "$work/src" >/dev/null
wheel=$(ls "$work"/dist/nas-*.whl)

# A fresh environment whose .pth appends the project venv's site-packages (a plain path line: that
# folder's own .pth files, the editable install of the checkout among them, are not processed).
"$python" -m venv --without-pip "$work/venv"
deps=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$deps" > "$site/project_dependencies.pth"
"$python" -m pip --python "$work/venv/bin/python" install --quiet --no-deps --no-index "$wheel" >/dev/null

cd "$work"
where=$("$work/venv/bin/python" -c 'import nas; print(nas.__file__)')
case "$where" in
    "$site"/*) ;;
    *) echo "wheel check: nas imported from $where, not from the fresh environment $site" >&2; exit 1 ;;
esac
"$python" - "$wheel" <<'PY'  # the shipped files are in the wheel (checked without unzip, which CI may lack)
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
wanted = ["nas/search_spaces/mnas.yaml", "nas/experiments/smoke.yaml", "nas/zoo/mnasnet.yaml",
          "nas/data/fashion_mnist_subset.npz", "nas/data/FASHION_MNIST_SUBSET.md"]
missing = [name for name in wanted if name not in names]
if missing:
    sys.exit(f"wheel check: not in {sys.argv[1]}: {', '.join(missing)}")
PY

nas=$work/venv/bin/nas
run() {  # run a command quietly; on failure show what it printed
    "$@" >last.log 2>&1 || { cat last.log >&2; echo "wheel check: failed: $*" >&2; exit 1; }
}
test "$("$nas" --version)" = "nas $("$work/venv/bin/python" -c 'import nas; print(nas.__version__)')"
run "$nas" search experiment=smoke out=run --quiet
run "$nas" export run -o exported
test -s exported/*.yaml || { echo "wheel check: nas export wrote nothing" >&2; exit 1; }
run "$nas" scale --phi 1..2 --base run --alpha 1.2 --beta 1.1 --gamma 1.15 --out family --quiet
ls family/*phi2*.yaml >/dev/null || { echo "wheel check: nas scale wrote no phi=2 member" >&2; exit 1; }
run "$work/venv/bin/python" -m nas info mnasnet-a1
echo "wheel check: $(basename "$wheel") in a fresh environment ran search, export, scale and info from another folder"
