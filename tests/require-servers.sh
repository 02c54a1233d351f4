#!/bin/sh
# Installs the real servers the test suite runs against when they are missing: Prometheus (discovery and
# scraping tests) and Redis (shared cache tests). Debian/Ubuntu packages, without their recommends.
# Package installs normally start the services; a temporary policy-rc.d stops that, so no daemon is left
# listening on the standard ports: the tests start their own on free loopback ports.
set -eu
missing=""
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -q
# shellcheck disable=SC2086 (one word per package)
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
