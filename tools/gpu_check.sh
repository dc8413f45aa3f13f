#!/usr/bin/env bash
# tools/gpu_check.sh: build llamanb for CUDA (sm_90) on a GPU machine and check it there.
#
#   tools/gpu_check.sh prepare   HERE, before the calls: stage the carry (tools/gpu_stage.py)
#   tools/gpu_check.sh build     THERE: CUDA build + install, resumable, stops by a deadline
#   tools/gpu_check.sh test      THERE: greedy CUDA vs CPU, GPU test subset, bench vs native
#
# The GPU machine (docs/gpu_check.md): nvcc 13, CMake, ninja, Python 3.12 with numpy,
# pytest and torch, 16 cores, no network. A call runs at most 10 minutes and carries at
# most 64 MiB; ignored paths a call does not carry (the build) stay there while the
# machine is warm (30 s after a call). The 94 MiB model fits no call, so it travels in
# two parts and the work is two calls, back to back:
#
#   run(command="tools/gpu_check.sh build", carry=["build/gpucheck/call1"], timeout_s=600)
#       unpacks the pruned llama.cpp, installs the carried wheels, then
#       configure + ninja + pip install of llamanb and the native driver, stopping
#       cleanly by GPU_CHECK_SECONDS (default 570 s); a second `build` continues
#       the same ninja build where it stopped.
#   run(command="GPU_CHECK_SECONDS=<T - 20> tools/gpu_check.sh test", carry=["build/gpucheck/call2"],
#       timeout_s=<T>)   with T = min(600, status's budget_left_s - 60)
#       rejoins the model (call1's part is still there), finishes the build if call 1
#       ran out of time, then the checks, each bounded by what is left of the deadline.
#       The deadline must be inside the call's limit, or the tool kills the command
#       before it writes gpu_check.json.
#
# Results come back in $OUT: build.log, test.log, greedy.json, bench.json, pytest.xml and
# gpu_check.json (every step's status and the two targets: greedy tokens equal to
# the CPU run's, or explained; llamanb tok/s >= the native CUDA driver's). `test` exits 0
# only when both targets are met and the tests passed; `build` exits 3 when stopped by
# its deadline (run it, or `test`, again to continue).
#
# If the build cannot fit the device time, GPU_CHECK_CMAKE_ARGS adds -C settings to
# both calls' commands, e.g. "-Ccmake.define.GGML_CUDA_FA=OFF": the 37 flash-attention
# instance files then compile as stubs (one took 31 s instead of 107 s on a loaded
# 2-core machine); native and llamanb both run without flash attention.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STAGE=$ROOT/build/gpucheck          # everything the check writes or is carried into
BUILD_DIR=$STAGE/cuda               # the CMake build tree, kept between the calls
SITE=$STAGE/site                    # pip --target: the carried wheels and llamanb
export OUT=${OUT:-$STAGE/out}       # the device tool brings $OUT back
PY=${GPU_CHECK_PYTHON:-python3}
ARCH=${GPU_CHECK_CUDA_ARCH:-90}
START=$SECONDS
DEADLINE=${GPU_CHECK_SECONDS:-570}  # seconds this command may run (the call's limit is 600)

log() { printf '[gpu_check %4ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { log "error: $*"; exit 1; }
left() { echo $((DEADLINE - (SECONDS - START))); }

# --- here ------------------------------------------------------------------------

prepare() {
    "$PY" "$ROOT/tools/gpu_stage.py" "$@"
    cat <<EOF

The two device calls, back to back (the build must still be there for the second):
  run(command="tools/gpu_check.sh build", carry=["build/gpucheck/call1"], timeout_s=600)
  run(command="GPU_CHECK_SECONDS=<T - 20> tools/gpu_check.sh test", carry=["build/gpucheck/call2"], timeout_s=<T>)
  with T = min(600, budget_left_s - 60) from the device tool's status, read after call 1
EOF
}

# --- there: inputs -----------------------------------------------------------------

# The pruned llama.cpp tree into vendor/llama.cpp, once per tarball: the same bytes
# again (a rerun of call 1) are not re-extracted, so ninja sees no new mtimes.
unpack_vendor() {
    local tarball=$STAGE/call1/llama.cpp.tar.gz marker=$ROOT/vendor/llama.cpp/.gpucheck-tarball sum
    [[ -f $tarball ]] || die "$tarball missing: carry build/gpucheck/call1 (made by: tools/gpu_check.sh prepare)"
    sum=$(sha256sum "$tarball" | cut -d' ' -f1)
    if [[ -f $marker && $(cat "$marker") == "$sum" ]]; then
        return
    fi
    log "unpacking llama.cpp ($(du -h "$tarball" | cut -f1))"
    tar -xzf "$tarball" -C "$ROOT"
    echo "$sum" >"$marker"
}

# nanobind and scikit-build-core as pinned (the machine's own may differ), into SITE.
install_wheels() {
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
    if [[ -f $SITE/.wheels-ok ]]; then return; fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
        "$STAGE"/call1/wheels/*.whl
    touch "$SITE/.wheels-ok"
}

# The model from its two carried parts, checked against the manifest.
join_model() {
    local manifest=$STAGE/call2/manifest.json name sum models=$STAGE/cache/models
    [[ -f $manifest ]] || die "$manifest missing: carry build/gpucheck/call2"
    [[ -f $STAGE/call1/model.part1 ]] || die "call 1's model part is gone (a fresh machine?): run both calls again"
    name=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["name"])' "$manifest")
    sum=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["sha256"])' "$manifest")
    mkdir -p "$models"
    MODEL=$models/$name
    if [[ ! -f $MODEL ]] || [[ $(sha256sum "$MODEL" | cut -d' ' -f1) != "$sum" ]]; then
        cat "$STAGE/call1/model.part1" "$STAGE/call2/model.part2" >"$MODEL.partial"
        [[ $(sha256sum "$MODEL.partial" | cut -d' ' -f1) == "$sum" ]] || die "the joined model's sha256 differs from the manifest"
        mv "$MODEL.partial" "$MODEL"
    fi
    # llamanb.default_model() finds it there (no network on the machine).
    export LLAMANB_CACHE=$STAGE/cache
}

# --- there: CUDA -----------------------------------------------------------------

# The prefix of pip's cuBLAS (nvidia-cublas puts nvidia/cu13/{include,lib}) that PY sees.
pip_cublas() {
    "$PY" -c 'import glob, os, nvidia
hits = [h for r in nvidia.__path__ for h in glob.glob(os.path.join(r, "*", "include", "cublas_v2.h"))]
print(os.path.dirname(os.path.dirname(hits[0])) if hits else "")' 2>/dev/null || true
}

# A toolkit prefix CMake can use. The machine's own when it has cuBLAS and a libcuda
# to link; else a prefix of symbolic links that adds pip's cuBLAS (nvidia-cublas:
# nvidia/cu13/{include,lib}) and the driver's libcuda.so.1. nvcc takes its include and
# library folders from where it is called (nvcc.profile: TOP=$(_HERE_)/..), so a linked
# bin/nvcc in the prefix sees the merged folders.
cuda_toolkit() {
    local nvcc top cublas="" libcuda="" prefix=$STAGE/cuda-root tgt
    nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
    [[ -x $nvcc ]] || die "no nvcc (PATH, CUDACXX or /usr/local/cuda/bin)"
    top=$(cd /tmp && "$nvcc" --dryrun -c -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)
    top=$(cd "$top" && pwd -P)
    tgt=$top/targets/x86_64-linux
    [[ -d $tgt ]] || tgt=$top
    if [[ -f $tgt/include/cublas_v2.h ]] && compgen -G "$tgt/lib/libcublas.so*" >/dev/null; then
        cublas=$tgt
    else
        cublas=${GPU_CHECK_CUBLAS:-$(pip_cublas)}
        [[ -n $cublas ]] || die "no cuBLAS: neither in $top nor in $PY's nvidia-cublas"
    fi
    if compgen -G "$tgt/lib/stubs/libcuda.so" >/dev/null || compgen -G "$tgt/lib/libcuda.so" >/dev/null; then
        libcuda=toolkit
    else
        libcuda=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 .*x86-64/ {print $NF; exit}')
    fi
    CUDA_ARGS=()
    if [[ $cublas == "$tgt" && $libcuda == toolkit ]]; then
        CUDA_ROOT=$top
    else
        log "toolkit $top: adding cuBLAS from $cublas${libcuda:+ and libcuda from $libcuda}"
        rm -rf "$prefix"
        local inc=$prefix/targets/x86_64-linux/include lib=$prefix/targets/x86_64-linux/lib d e
        mkdir -p "$prefix/bin" "$inc" "$lib"
        for d in "$top/bin:$prefix/bin" "$tgt/include:$inc" "$cublas/include:$inc" "$tgt/lib:$lib" "$cublas/lib:$lib"; do
            for e in "${d%%:*}"/*; do
                [[ -e ${d#*:}/${e##*/} ]] || ln -s "$e" "${d#*:}/"
            done
        done
        ln -s "$top/nvvm" "$prefix/nvvm"
        ln -s targets/x86_64-linux/include "$prefix/include"
        ln -s targets/x86_64-linux/lib "$prefix/lib64"
        for e in "$lib"/lib*.so.[0-9]*; do  # pip ships libcublas.so.13 only; CMake looks for libcublas.so
            [[ -e ${e%.so.*}.so ]] || ln -s "${e##*/}" "${e%.so.*}.so"
        done
        if [[ -n $libcuda && $libcuda != toolkit ]]; then
            ln -s "$libcuda" "$lib/libcuda.so"
        elif [[ -z $libcuda ]]; then
            # Without any libcuda nothing can link ggml-cuda's virtual memory management
            # (a CPU machine checking the recipe): build without it.
            log "no libcuda.so anywhere: configuring with GGML_CUDA_NO_VMM=ON"
            CUDA_ARGS+=(-Ccmake.define.GGML_CUDA_NO_VMM=ON)
        fi
        CUDA_ROOT=$prefix
    fi
    CUDA_ARGS+=(-Ccmake.define.CMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc" -Ccmake.define.CUDAToolkit_ROOT="$CUDA_ROOT")
    echo "$CUDA_ROOT" >"$STAGE/cuda-root.txt"  # for `test`: where the libraries are
}

# --- there: build ------------------------------------------------------------------

# configure + ninja + install through pip (scikit-build-core), into a build dir that
# outlives the command: killed at the deadline (SIGINT to the whole group: ninja
# removes what it was writing), the next `build` reconfigures the same tree and ninja
# continues. build.targets adds the native driver bench/native_greedy.cpp, linked
# against the very libraries the extension links.
build() {
    mkdir -p "$OUT"
    log "build: deadline ${DEADLINE}s, CUDA architectures $ARCH, $(nproc) CPUs"
    unpack_vendor
    install_wheels
    cuda_toolkit
    local nanobind_dir budget rc=0
    nanobind_dir=$("$PY" -m nanobind --cmake_dir)
    budget=$(($(left) - 10))
    ((budget > 30)) || { log "no time left to build"; return 3; }
    log "pip install (configure + ninja), at most ${budget}s"
    # shellcheck disable=SC2086  # GPU_CHECK_CMAKE_ARGS: extra -C settings, split on spaces
    timeout -s INT -k 20 "$budget" "$PY" -m pip install --no-build-isolation --no-deps --no-index --upgrade -v \
        --target "$SITE" "$ROOT" \
        -Cbuild-dir="$BUILD_DIR" -Cbuild.targets="core;native_greedy" \
        -Ccmake.define.LLAMANB_BACKEND=cuda -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH" \
        -Ccmake.define.nanobind_DIR="$nanobind_dir" "${CUDA_ARGS[@]}" ${GPU_CHECK_CMAKE_ARGS:-} \
        >>"$OUT/build.log" 2>&1 || rc=$?
    grep -E '^ *\[[0-9]+/[0-9]+\]' "$OUT/build.log" | tail -1 >&2 || true
    if ((rc == 124 || rc == 130 || rc == 137)); then
        log "build stopped at the deadline; run 'tools/gpu_check.sh build' (or test) again to continue"
        return 3
    elif ((rc != 0)); then
        tail -40 "$OUT/build.log" >&2
        die "build failed ($rc): see build.log"
    fi
    touch "$STAGE/built.ok"
    log "build done: llamanb in $SITE, driver $BUILD_DIR/native_greedy"
}

# --- there: test -------------------------------------------------------------------

# One step: its own time bound (what is left, minus what later steps need), its output
# into test.log and its status into STEPS for gpu_check.json.
STEPS=()
step() {
    local name=$1 reserve=$2 rc=0 budget
    shift 2
    budget=$(($(left) - reserve))
    if ((budget < 20)); then
        log "$name: skipped (${budget}s left for it)"
        STEPS+=("$name=skipped")
        return 0
    fi
    log "$name: at most ${budget}s"
    timeout -s INT -k 10 "$budget" "$@" >>"$OUT/test.log" 2>&1 || rc=$?
    STEPS+=("$name=$rc")
    log "$name: exit $rc"
}

# The suite's files that need nothing the machine lacks (gguf, jsonschema, starlette,
# openai, httpx, huggingface_hub) and run the model: core.Model's default puts every
# layer on the GPU; LLAMANB_TEST_N_GPU_LAYERS=-1 does it for the `llm` fixture too.
# Quick files first: the step ends at the deadline, and on 2 busy CPU cores these 71
# tests took 10 minutes (test_embed.py and test_batch_generate.py the longest).
GPU_TESTS=(tests/test_core.py tests/test_errors.py tests/test_cache.py tests/test_weights.py
           tests/test_generate.py tests/test_batch_generate.py tests/test_embed.py)

test_gpu() {
    mkdir -p "$OUT"
    log "test: deadline ${DEADLINE}s"
    install_wheels
    join_model
    if [[ ! -f $STAGE/built.ok ]]; then  # call 1 ran out of time: finish, keeping 150 s for the checks
        GPU_CHECK_SECONDS=$(($(left) - 150)) "$ROOT/tools/gpu_check.sh" build ||
            { log "the build did not finish: no checks"; exit 3; }
    fi
    # The installed module finds cuBLAS and cudart there (pip's cuBLAS is on no loader path).
    [[ -f $STAGE/cuda-root.txt ]] || die "no $STAGE/cuda-root.txt: run 'tools/gpu_check.sh build' first"
    LD_LIBRARY_PATH=$(cat "$STAGE/cuda-root.txt")/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LD_LIBRARY_PATH
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$OUT/test.log" 2>&1 || true
    export PYTHONUNBUFFERED=1
    # Reserves: what the later steps need at least (greedy ~30 s, bench ~60 s).
    step greedy 90 "$PY" "$ROOT/tools/gpu_greedy.py" --model "$MODEL" --out "$OUT/greedy.json"
    step bench 30 "$PY" "$ROOT/bench/gpu.py" --driver "$BUILD_DIR/native_greedy" --model "$MODEL" --out "$OUT/bench.json"
    local per_test=()
    if "$PY" -c 'import pytest_timeout' 2>/dev/null; then per_test=(--timeout=120); fi
    step pytest 5 env LLAMANB_TEST_N_GPU_LAYERS=-1 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" --durations=10 \
        "${per_test[@]}" --junit-xml="$OUT/pytest.xml" "${GPU_TESTS[@]}"
    grep -E "passed|failed|error" "$OUT/test.log" | tail -1 >&2 || true
    "$PY" - "$OUT" "${STEPS[@]}" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
steps = dict(s.split("=", 1) for s in sys.argv[2:])
def read(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None
greedy, bench = read("greedy.json"), read("bench.json")
summary = {
    "steps": steps,
    "greedy_ok": bool(greedy and greedy["ok"]),
    "greedy_equal": f"{greedy['equal']}/{greedy['prompts']}" if greedy else None,
    "speed_ratio": bench["gen"]["ratio"] if bench else None,
    "speed_ok": bool(bench and bench["gen"]["ratio"] >= 1.0),
    "outside_decode_us": bench["outside_decode_us"] if bench else None,
}
summary["ok"] = summary["greedy_ok"] and summary["speed_ok"] and steps.get("pytest") == "0"
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps(summary, indent=1))
sys.exit(0 if summary["ok"] else 1)  # the script's exit status: both targets met, tests passed
EOF
}

case ${1:-} in
    prepare) shift; prepare "$@" ;;
    build) build ;;
    test) test_gpu ;;
    *) sed -n '2,6p' "$0" >&2; exit 2 ;;
esac
