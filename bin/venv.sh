# Shared by bin/test and bin/demo: find a Python and build (once) a lane's virtualenv.
# Environments are cached under ${HGPIPE_VENV_ROOT:-~/.cache/hgpipe/venvs}, keyed by the
# hash of the lane's requirements file, so later runs (and CI on the same machine) reuse
# them; a half-built environment is never used: it counts only once it holds .complete
# (written last), and one without it is removed and built again. It is built where it
# stays, so its console scripts (pytest, horovodrun) carry their real #! path.
# A lane may add requirements/<lane>.build.txt: packages compiled from source against the
# TensorFlow the first pass installed (Horovod), installed in a second pass without build
# isolation (so the build sees that TensorFlow) and without pip's wheel cache (a cached
# Horovod wheel built against another TensorFlow would install but fail to load).
# Concurrent runs wait for each other's build (flock on <dir>.lock) instead of clobbering it.
venv_root="${HGPIPE_VENV_ROOT:-$HOME/.cache/hgpipe/venvs}"
mkdir -p "$venv_root"

find_python() {  # $1 = major.minor ; a real interpreter (pyenv shims may exist but refuse)
  local want="$1" cand
  for cand in "$(pyenv root 2>/dev/null)/versions/$want"*/bin/python"$want" "python$want"; do
    if "$cand" -c 'import sys' >/dev/null 2>&1; then echo "$cand"; return 0; fi
  done
  return 1
}

ensure_venv() {  # $1 = lane ; prints the venv's python
  local lane="$1" req="requirements/$1.txt" build="requirements/$1.build.txt" py ver hash dir t0
  case "$lane" in py37-*) ver=3.7 ;; py311-*) ver=3.11 ;; *) echo "unknown lane $lane" >&2; exit 2 ;; esac
  hash=$(cat "$req" $( [ -f "$build" ] && echo "$build" ) | sha256sum | cut -c1-12)
  dir="$venv_root/$lane-$hash"
  exec 9>"$dir.lock"; flock 9
  if [ ! -f "$dir/.complete" ]; then
    py=$(find_python "$ver") || { echo "bin/test: Python $ver not found (install it, e.g. 'pyenv install $ver')" >&2; exit 2; }
    echo "bin/test: building $lane environment in $dir (once)" >&2
    rm -rf "$dir" "$dir.tmp"
    "$py" -m venv "$dir" || exit 2
    "$dir/bin/python" -m pip install -q --upgrade "pip<24.1" >&2
    "$dir/bin/python" -m pip install -q -r "$req" >&2 || { echo "bin/test: installing $req failed" >&2; exit 2; }
    if [ -f "$build" ]; then
      echo "bin/test: compiling $build against the lane's TensorFlow (minutes)" >&2; t0=$SECONDS
      HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
      HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
        "$dir/bin/python" -m pip install -q --no-cache-dir --no-build-isolation -r "$build" >&2 \
        || { echo "bin/test: compiling $build failed" >&2; exit 2; }
      echo "bin/test: $build compiled in $((SECONDS - t0)) s" >&2
    fi
    touch "$dir/.complete"
  fi
  echo "$dir"
}

