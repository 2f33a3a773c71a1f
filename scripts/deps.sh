#!/bin/sh
# deps.sh - installs the Debian packages polygate needs, only those missing.
# Usage: scripts/deps.sh build|test|bench. Quiet and fast when everything is there;
# runs apt-get update only when something must be installed; sudo when not root.
set -e
# nodejs/npm install the browser example's MQTT.js (and the browser test's driver);
# a machine whose Node.js comes from elsewhere (NodeSource bundles npm) keeps it.
build="gcc make pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev libcoap3-dev libssl-dev libconfig-dev libcmocka-dev nodejs"
command -v npm >/dev/null 2>&1 || build="$build npm"
test="$build clang libclang-rt-14-dev mosquitto mosquitto-clients python3-pytest python3-paho-mqtt openssl chromium"
bench="$build mosquitto"
case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
bench) want=$bench ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
