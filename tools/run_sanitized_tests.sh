#!/usr/bin/env bash
# Runs the WHOLE test suite against fastbce built with AddressSanitizer + UndefinedBehaviorSanitizer
# (CMake option FASTBCE_SANITIZE). See docs/hardening.md.
#
#   tools/run_sanitized_tests.sh [pytest arguments...]
#
# Use the Python of an environment where fastbce's test dependencies are installed (the normal
# `pip install ".[test,peers]"` set-up): PYTHON=/path/to/venv/bin/python tools/run_sanitized_tests.sh
# The sanitized build is installed into a staging directory (not into the environment) and put
# first on PYTHONPATH, for pytest and for every subprocess the tests start. The interpreter
# itself is not instrumented, so the ASan runtime is preloaded (it must be the first library in
# the process); leak detection is off because CPython does not free everything at exit (the C++
# fuzz harness runs LeakSanitizer on the kernel instead).
#
# Environment: PYTHON (default python3), CXX (default c++; g++ or clang++),
# FASTBCE_ASAN_BUILD_DIR (default build/asan), FASTBCE_ASAN_STAGE (default build/asan-site).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
CXX=${CXX:-c++}
BUILD_DIR=${FASTBCE_ASAN_BUILD_DIR:-build/asan}
STAGE=${FASTBCE_ASAN_STAGE:-build/asan-site}

if "$CXX" --version | grep -qi clang; then
    runtime=$("$CXX" -print-file-name="libclang_rt.asan-$(uname -m).so")
else
    runtime=$("$CXX" -print-file-name=libasan.so)
fi
# libstdc++ right after it: the interpreter does not link it, and ASan resolves its __cxa_throw
# interceptor when it starts (else the first C++ exception of a later library aborts with
# "CHECK failed: ... real___cxa_throw != 0", as matplotlib's ft2font does)
libstdcxx=$("$CXX" -print-file-name=libstdc++.so.6)
for lib in "$runtime" "$libstdcxx"; do
    if [[ ! -f "$lib" ]]; then
        echo "run_sanitized_tests: $lib not found for $CXX" >&2
        exit 2
    fi
done

echo "== building fastbce with FASTBCE_SANITIZE=ON ($CXX) into $STAGE"
rm -rf "$STAGE"
CXX="$CXX" "$PYTHON" -m pip install --quiet --no-deps --no-build-isolation --target "$STAGE" \
    -Cbuild-dir="$BUILD_DIR" -Ccmake.build-type=RelWithDebInfo \
    -Ccmake.define.FASTBCE_SANITIZE=ON -Ccmake.define.FASTBCE_WERROR=ON .

export PYTHONPATH="$PWD/$STAGE${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$runtime:$libstdcxx${LD_PRELOAD:+:$LD_PRELOAD}"
# Abort (a crash pytest cannot swallow) on the first report of either sanitizer. Reports go to
# files as well as stderr: pytest captures the stderr of a test, and loses it when the process
# aborts. They are printed at the end.
LOGS="$PWD/build/asan-logs"
rm -rf "$LOGS" && mkdir -p "$LOGS"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:log_path=$LOGS/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export FASTBCE_SANITIZED=1  # tests that measure RSS skip themselves

# make sure the instrumented build is the one imported
"$PYTHON" - "$STAGE" <<'EOF'
import os, sys
import fastbce._core as core
stage = os.path.realpath(sys.argv[1])
assert os.path.realpath(core.__file__).startswith(stage), f"imported {core.__file__}, not the build in {stage}"
maps = open("/proc/self/maps").read()
assert "asan" in maps, "the ASan runtime is not loaded"
print(f"== fastbce {core.__file__} (sanitized; SIMD target {core.active_target()})")
EOF

echo "== python -m pytest $*"
status=0
"$PYTHON" -m pytest "$@" || status=$?
if compgen -G "$LOGS/*" > /dev/null; then
    echo "== sanitizer reports ($LOGS):"
    cat "$LOGS"/*
    [[ $status == 0 ]] && status=1
else
    echo "== no sanitizer reports"
fi
exit "$status"
