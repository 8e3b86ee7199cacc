#!/usr/bin/env bash
# Installs what tests/test_web_app.py needs on a Debian (or Debian-like) CI machine, then builds
# the web app: Debian's chromium (Playwright drives it; no `playwright install` download),
# the Python package playwright, and `npm ci && npm run build` in export/web.
# Idempotent: a second run installs nothing and takes a few seconds.
# Then: pytest tests/test_web_app.py
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.2}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PY="${PYTHON:-python}"

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${_APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; _APT_UPDATED=1; fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

# 1. chromium. Debian ships a real package; on Ubuntu `chromium` is only a snap shim that does
#    not work in containers, so there set CHROMIUM=/path/to/chrome (the test reads it too).
if [ -n "${CHROMIUM:-}" ]; then
  echo "chromium: using CHROMIUM=$CHROMIUM"
elif command -v chromium >/dev/null 2>&1; then
  echo "chromium: already installed ($(chromium --version 2>/dev/null || echo '?'))"
else
  # fonts-dejavu-core: chromium starts without fonts, but the page's text needs one to render.
  apt_install chromium fonts-dejavu-core
  echo "chromium: installed $(chromium --version)"
fi

# 2. node/npm for the build (only when missing).
if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi

# 3. playwright (the Python client; it brings its own node driver).
if "$PY" -c "import playwright" >/dev/null 2>&1; then
  echo "playwright: already installed"
else
  "$PY" -m pip install -q "playwright==${PLAYWRIGHT_VERSION}"
fi

# 4. the web app: onnxruntime-web (exact version from package-lock.json) copied into dist/.
cd export/web
want="$(node -p "require('./package-lock.json').packages['node_modules/onnxruntime-web'].version")"
have="$(node -p "try { require('./node_modules/onnxruntime-web/package.json').version } catch (e) { '' }")"
if [ "$want" != "$have" ]; then
  npm ci --no-audit --no-fund
else
  echo "npm: onnxruntime-web $have already in node_modules"
fi
npm run -s build
