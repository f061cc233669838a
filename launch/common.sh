# Shared by the launch scripts: install what is missing, build, set the environment.
# Sourced, not executed.

DPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DPO_SYSTEM_PACKAGES=(libopenblas-dev libopenmpi-dev openmpi-bin pkg-config)

# Installs the Debian packages the build needs, with apt-get as root, or prints the
# exact command and stops when not root.
dpo_install_system_packages() {
    local missing=()
    for p in "${DPO_SYSTEM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || {
                echo "error: apt-get could not install ${missing[*]}" >&2; return 1; }
    else
        echo "error: missing system packages: ${missing[*]}" >&2
        echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
}

dpo_require_swift() {
    command -v swift >/dev/null 2>&1 || {
        echo "error: swift is not on PATH; install Swift 6 from https://swift.org/install/linux/" >&2
        return 1; }
}

# Open MPI refuses to start as root unless told; CI and containers run as root.
dpo_mpi_environment() {
    if [ "$(id -u)" -eq 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
}
