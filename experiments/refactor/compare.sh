#!/usr/bin/env bash
# Dump a checkout's behaviour and diff it against a baseline dump.
#
#   experiments/refactor/compare.sh CHECKOUT BASELINE_DIR [OUT_DIR] [-- dump options...]
#
#   CHECKOUT      the checkout whose erf is tested (put first on PYTHONPATH), e.g. /work/main
#   BASELINE_DIR  a dump made by dump_behaviour.py, e.g. /tmp/dump_before
#   OUT_DIR       where this dump goes (replaced); default /tmp/dump_after
#   after --       passed to dump_behaviour.py, e.g. -- --cases 'measure_*' 'errors/*'
#                  (with --cases only those cases are compared: the baseline is cut to them)
#
# PYTHON (environment) picks the interpreter; default /work/main/.venv/bin/python.
# Prints the number of files compared, the files only on one side, and the diff; exits 0 when
# the dumps are identical, 1 when they differ, 2 on a usage error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 2 ]]; then
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
fi
checkout="$(cd "$1" && pwd)"
baseline="$(cd "$2" && pwd)"
shift 2
out=/tmp/dump_after
if [[ $# -gt 0 && "$1" != "--" ]]; then
    out="$1"
    shift
fi
[[ $# -gt 0 && "$1" == "--" ]] && shift
python="${PYTHON:-/work/main/.venv/bin/python}"
case "$(cd "$(dirname "$out")" 2>/dev/null && pwd)/$(basename "$out")" in
    "$baseline") echo "error: OUT_DIR is the baseline" >&2; exit 2 ;;
esac

echo "dumping $checkout with $python into $out" >&2
"$python" "$here/dump_behaviour.py" --python "$python" --pythonpath "$checkout" --out "$out" "$@"

# With --cases, compare only the cases this dump holds (top-level folders, and the files of
# cli/ and errors/).
left="$baseline"
if [[ " $* " == *" --cases "* ]]; then
    left="$(mktemp -d /tmp/dump_baseline_cut.XXXXXX)"
    trap 'rm -rf "$left"' EXIT
    (cd "$out" && find . -type f -path './*/*' | sed 's|^\./||') | while read -r rel; do
        top="${rel%%/*}"
        case "$top" in
            cli|errors) src="$rel" ;;
            *) src="$top" ;;
        esac
        if [[ -e "$baseline/$src" && ! -e "$left/$src" ]]; then
            mkdir -p "$left/$(dirname "$src")"
            cp -r "$baseline/$src" "$left/$src"
        fi
    done
fi

n_left=$(find "$left" -type f | wc -l)
n_right=$(find "$out" -type f | wc -l)
echo "files: $n_left in the baseline, $n_right in this dump"
status=0
diff -r "$left" "$out" > /tmp/dump_compare.diff || status=$?
if [[ $status -eq 0 ]]; then
    echo "compared $n_left files: identical"
    exit 0
fi
n_diff=$(grep -c '^diff -r' /tmp/dump_compare.diff || true)
n_only=$(grep -c '^Only in' /tmp/dump_compare.diff || true)
echo "compared $n_left files: $n_diff differ, $n_only only on one side (diff also in /tmp/dump_compare.diff)"
cat /tmp/dump_compare.diff
exit 1
