#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the Debian packages the tests need when they
# are missing, then formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use (real peers, not mocks): SIPp (sip-tester) plays the PBX and
# the carrier in the end-to-end call tests; Kamailio with its TLS module is the carrier's TLS
# edge in the TLS call tests (SIPp from Debian has no TLS); openssl makes their certificates.
# python3-websockets drives tests/ws/ws_phone.py, the browser-like phone of the SIP over WSS
# tests (SIPp has no WebSocket transport).
# baresip-core: a real phone (headless: stdio, g711, aubridge) in the e2e_clients tests.
# fail2ban: its fail2ban-regex and stock asterisk filter check our security-event lines.
# sipvicious, sipsak, nmap: the real attack tools of the e2e_attacks tests (tests/attacks/).
# The rest of the client matrix (e2e_clients, docs/phones.md): linphone-cli (linphonec, a
# real softphone); chromium, in which JsSIP and SIP.js (npm, tests/browser/) register over WSS.
# dnsmasq-base: the lab's DNS server (tests/dns/lab.conf, carrier.lab on 127.0.0.1:5353) for
# the trunks named by DNS (the binary only: no system service that would take port 53).
# rtpengine-daemon: rtpengine, the external media engine (`[media] engine = "rtpengine"`), run
# by the tests in userspace mode on its own ports (the package's service is not used).
# Later capabilities add theirs here.
PACKAGES=(sip-tester kamailio kamailio-tls-modules openssl python3-websockets baresip-core
  fail2ban sipvicious sipsak nmap linphone-cli chromium dnsmasq-base rtpengine-daemon)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js with npm drives the browser tests (tests/browser/, Node 20 or later). Installed from
# Debian only when no npm is on the machine: a Node.js from elsewhere (with its own npm) stays.
if ! command -v npm >/dev/null 2>&1; then
  echo "==> installing nodejs npm"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
echo "==> npm ci (tests/browser: JsSIP, SIP.js, playwright-core, esbuild; pinned by package-lock.json)"
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> fuzz targets compile (running them needs nightly: see fuzz/README.md)"
cargo check --manifest-path fuzz/Cargo.toml --locked

echo "==> bench harness unit tests (bench/run.py's pure parts)"
python3 -m unittest discover -s bench -p 'test_run.py'

echo "==> cargo test"
cargo test --workspace --locked

echo "==> all checks passed"
