# Shared by scripts/run and scripts/test. Sourced, not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${WEBSONIC_VENV:-$ROOT/.venv}

# What WebSonic runs (podman/buildah/skopeo/runc for images, mmdebstrap for base images).
RUNTIME_PACKAGES=(
  podman buildah skopeo runc mmdebstrap uidmap fuse-overlayfs slirp4netns
  containernetworking-plugins netavark aardvark-dns iptables
  git openssl openssh-client rsync ca-certificates python3 python3-venv python3-pip
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "Installing system packages needs root (or sudo)." >&2; exit 1; fi
  else SUDO=; fi
}

# install_packages PKG... : apt-get install only what is missing.
install_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root
  log "Installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# make_venv EXTRAS : a virtualenv with WebSonic installed (editable) and the given extras.
make_venv() {
  local extras=$1 python=${PYTHON:-python3}
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "WebSonic needs Python >= 3.11 ($python is $("$python" --version))." >&2; exit 1; }
  [ -x "$VENV/bin/python" ] || { log "Creating $VENV"; "$python" -m venv "$VENV"; }
  local stamp="$VENV/.websonic-installed-$extras"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    log "Installing WebSonic into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$ROOT[$extras]"
    touch "$stamp"
  fi
}
