# scripts/lib/ensure-deps.sh: sourced by scripts/test and .ci/run. Installs
# what the tests need and this machine lacks, so that the README's test
# command works on a fresh machine:
#   Debian packages: cmake (>= 3.25), ninja-build, g++, libgtest-dev
#     (apt-get as root, or through passwordless sudo);
#   PyPI: numpy, nanobind, scikit-build-core, pytest, and cmake >= 3.25 when
#     the distribution's is older.
# FASTTOPK_NO_INSTALL=1 installs nothing and only reports what is missing.
# Uses $PY (the Python that runs the tests). Returns non-zero only when an
# install that was needed failed.

version_ge() {  # A >= B for dotted versions
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

ensure_test_deps() {
  local sudo="" f
  if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
  local apt_pkgs=() py_pkgs=() cmake_ok=0 gtest_found=0
  if command -v cmake >/dev/null 2>&1 &&
    version_ge "$(cmake --version | head -n 1 | awk '{print $3}')" 3.25; then
    cmake_ok=1
  fi
  ((cmake_ok)) || apt_pkgs+=(cmake)
  command -v ninja >/dev/null 2>&1 || apt_pkgs+=(ninja-build)
  command -v g++ >/dev/null 2>&1 || apt_pkgs+=(g++)
  for f in /usr/lib/*/cmake/GTest/GTestConfig.cmake /usr/lib/cmake/GTest/GTestConfig.cmake \
    /usr/local/lib/cmake/GTest/GTestConfig.cmake /usr/local/lib/*/cmake/GTest/GTestConfig.cmake; do
    [[ -f $f ]] && gtest_found=1
  done
  ((gtest_found)) || [[ -n ${FASTTOPK_GTEST_SOURCE_DIR:-} ]] || apt_pkgs+=(libgtest-dev)

  "$PY" -c 'import numpy' 2>/dev/null || py_pkgs+=(numpy)
  "$PY" -c 'import nanobind' 2>/dev/null || py_pkgs+=(nanobind)
  "$PY" -c 'import scikit_build_core' 2>/dev/null || py_pkgs+=(scikit-build-core)
  "$PY" -c 'import pytest' 2>/dev/null || py_pkgs+=(pytest)

  if ((${#apt_pkgs[@]} + ${#py_pkgs[@]} == 0)); then return 0; fi
  if [[ ${FASTTOPK_NO_INSTALL:-0} == 1 ]]; then
    echo "ensure-deps: missing ${apt_pkgs[*]} ${py_pkgs[*]} (FASTTOPK_NO_INSTALL=1: not installing)" >&2
    return 0
  fi
  local rc=0
  if ((${#apt_pkgs[@]})); then
    echo "ensure-deps: apt-get install ${apt_pkgs[*]}"
    { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q \
      --no-install-recommends "${apt_pkgs[@]}"; } || rc=1
  fi
  # The distribution's cmake may be older than the 3.25 the presets need.
  if ! command -v cmake >/dev/null 2>&1 ||
    ! version_ge "$(cmake --version | head -n 1 | awk '{print $3}')" 3.25; then
    py_pkgs+=("cmake>=3.25")
  fi
  if ((${#py_pkgs[@]})); then
    echo "ensure-deps: pip install ${py_pkgs[*]}"
    PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install -q "${py_pkgs[@]}" || rc=1
  fi
  # Console scripts that pip installed (cmake, ninja) come first on PATH.
  PATH="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  export PATH
  return $rc
}
