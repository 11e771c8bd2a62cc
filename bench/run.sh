#!/usr/bin/env bash
# Calls through the gateway vs Kamailio: one command, same SIPp scenario, same
# machine, loopback only (the lab of LAB.md).
#
#   bench/run.sh                      # both proxies, full sweep (about 12-20 min)
#   PROXIES=sipwarden bench/run.sh    # one of them only
#   KIND=register bench/run.sh        # REGISTER with digest auth instead of calls
#   KIND=flood bench/run.sh           # REGISTER flood from a banned source + calls
#
# Call flow, for both proxies, UDP:
#   SIPp UAC "trunk" 127.0.0.3:5060 --INVITE sip:+15551230042@127.0.0.1:5060-->
#   proxy 127.0.0.1:5060 --> SIPp UAS "PBX" 127.0.0.10:5080
#   INVITE -> 100/180 -> 200 -> ACK -> (pause HOLD_MS) -> BYE -> 200
# The same two scenario files (scenarios/uac_invite.xml, scenarios/uas_rr.xml)
# drive both proxies unchanged.
#
# For every proxy it sweeps CALL_RATES upward (interleaved: each rate runs
# Kamailio, then sipwarden, back to back) until a rate fails the criteria
#   fail < MAX_FAIL_PCT %, p95 (INVITE->200, SIPp RTD 1) <= MAX_P95_MS,
#   achieved >= 95 % of offered
# (the criteria of ../shared/bench/kamailio, the Kamailio reference). A proxy
# that passes every CALL_RATES step continues with EXTRA_RATES. The best
# passing rate of each proxy is then run again until REPEATS runs exist, and
# the median is printed ("FINAL"), followed by the sipwarden/Kamailio ratios.
#
# CPU: utime+stime of the proxy's whole process tree from /proc/PID/stat over
# the SIPp client's wall time, like the reference; CPU per call = that CPU
# divided by the calls completed.
#
# Each run starts a fresh proxy (sipwarden: a fresh scratch directory with a
# copy of examples/) and a fresh UAS, and stops only the PIDs it started
# (never pkill/killall). Every SIPp run is bounded by -m, -timeout and
# timeout(1). Before each run it waits (bounded) until the lab ports are free
# and the machine is idle.
#
# KIND=register: a phone registering with digest auth, REGISTER -> 401 ->
# REGISTER with credentials -> 200 (scenarios/reg_auth.xml, the Kamailio
# reference's scenario, unchanged), from 127.0.0.2:5062, the lab's phone
# network, user "bench" / "benchpass" on both (Kamailio: the reference's
# pv_auth_check and in-memory usrloc; sipwarden: an accounts file with that
# user's HA1 and its registrar, which writes every binding to SQLite before
# the 200 goes out). The measure is completed registrations per second.
#
# KIND=flood: one untrusted source, FLOOD_IP 127.0.0.66 (the lab's attackers,
# allow-listed by neither proxy), floods the proxy with REGISTERs without
# credentials (scenarios/reg_flood.xml, the Kamailio reference's, unchanged)
# while the carrier 127.0.0.3:5060 places LEGIT_RATE trunk calls per second to
# the PBX UAS (uac_invite.xml, as KIND=calls). The first REGISTERs get a 401
# and trip the flood limit (sipwarden: the lab's register_rps 20 / burst 40;
# Kamailio: pike 16 per 2 s + htable ipban); the source is then banned and
# everything it sends is dropped (sipwarden: in the transport, before parsing;
# Kamailio: in its script, after parsing). No sweep: REPEATS runs per proxy
# (Kamailio, then sipwarden, back to back), each FLOOD_SECS long, and the
# median. Per run: flood datagrams sent/s, kernel drops on the proxy's UDP
# socket(s), absorbed_per_s = (sent - drops) / wall, the replies the flooder
# got and whether it was cut off (none in the last 5 s), whether the ban is in
# the proxy's table, the proxy's CPU, and the legitimate calls' fail % and
# latency. FLOODER=sipp: SIPp at FLOOD_RATE (SIPp tops out near 50k msg/s);
# FLOODER=blast: bench/reg_blast.c (compiled with gcc), the same REGISTER
# with a fresh branch/Call-ID per datagram, sendmmsg, at FLOOD_RATE or, with
# FLOOD_RATE=max, as fast as one core can send.
#
# Environment (defaults in brackets):
#   KIND [calls]   calls | register | flood
#   FLOOD_RATE [20000]  flood datagrams/s offered (KIND=flood); with
#                   FLOODER=blast, "max" = as fast as the blaster can send
#   FLOOD_SECS [20]  LEGIT_RATE [100] (trunk calls/s during the flood; 0: none)
#   FLOODER [sipp]  sipp | blast    FLOOD_PORT [5090] (on 127.0.0.66)
#   PROXIES ["kamailio sipwarden"]   which proxies, in the order run per step
#   CALL_RATES ["500 1000 1500 2000 2500 3000 4000 5000"]   calls/s sweep
#   REG_RATES ["2000 4000 6000 8000 10000 12000 14000 16000"]   registrations/s
#              sweep (KIND=register; EXTRA_RATES then default to
#              "18000 20000 24000 28000 32000")
#   EXTRA_RATES ["6000 7000 8000 10000"]  only for a proxy that passed all CALL_RATES
#   RUN_SECS [15]  REPEATS [3]  HOLD_MS [0]  MAX_FAIL_PCT [1]  MAX_P95_MS [50]
#   CHILDREN [2]  Kamailio UDP workers (the reference's main figure)
#   KAM_MAXBUFFER   unset: Kamailio's default UDP receive-buffer probing (max
#                   256 KiB, as in the reference). Set: adds maxbuffer=N to
#                   the rendered kamailio.cfg -- a diagnostic (see README)
#   DID [+15551230042]  called number (a DID of the lab trunk "carrier")
#   PROXY_PORT [5060] PBX_PORT [5080] TRUNK_PORT [5060] ADMIN_PORT [8080]
#   SIPWARDEN_BIN   use this binary instead of building
#   BASELINE_REV    a second sipwarden, built from this git revision (clean
#                   snapshot), run as proxy "baseline" beside "sipwarden": a
#                   before/after comparison in one run. PROXIES then defaults
#                   to "baseline sipwarden" and the ratios printed are
#                   sipwarden/baseline (e.g. BASELINE_REV=1560461 SIPWARDEN_REV=HEAD)
#   SIPWARDEN_REV   build this git revision (e.g. HEAD) from a clean snapshot
#                   in BUILD_DIR [/tmp/sipwarden-bench-build], instead of
#                   `cargo build --release -p sipwarden` in the working tree
#                   (useful while the working tree is mid-edit)
#   SIPWARDEN_LOG [warn]   sipwarden's log filter (stderr goes to the run's log)
#   SW_MAX_TRANSACTIONS    unset: the lab config as it is (max_transactions
#                   250 000, the default). Set: adds [transactions]
#                   max_transactions = N to sipwarden's bench config -- a
#                   diagnostic, NOT the comparison (see README)
#   OUT_DIR [/tmp/sipwarden-bench.<time>]  logs, CSVs, metrics, summary.txt
#   QUIET_PCT [10] QUIET_MAX_WAIT [60]  wait (bounded) for an idle machine
#   PORT_WAIT [300]  seconds to wait for busy lab ports before giving up
#   BENCH_NICE [0]   nice value for every process started (same for both)
#   PROFILE [0]      1: after the sweeps, one extra sipwarden run at its best
#                    rate under `perf record` (not counted in the figures)
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
IP=127.0.0.1          # the proxy: loopback only, on purpose
PBX_IP=127.0.0.10     # the lab's PBX (LAB.md): not 127.0.0.1, where local clients are phones
TRUNK_IP=127.0.0.3    # the lab's carrier
KIND=${KIND:-calls}
if [[ -n ${BASELINE_REV:-} ]]; then
	PROXIES=${PROXIES:-"baseline sipwarden"}
else
	PROXIES=${PROXIES:-"kamailio sipwarden"}
fi
if [[ $KIND == register ]]; then
	CALL_RATES=${REG_RATES:-"2000 4000 6000 8000 10000 12000 14000 16000"}
	EXTRA_RATES=${EXTRA_RATES-"18000 20000 24000 28000 32000"}
else
	CALL_RATES=${CALL_RATES:-"500 1000 1500 2000 2500 3000 4000 5000"}
	EXTRA_RATES=${EXTRA_RATES-"6000 7000 8000 10000"}
fi
REG_IP=127.0.0.2      # the lab's phones
FLOOD_IP=127.0.0.66   # the lab's attackers: never allow-listed
FLOOD_PORT=${FLOOD_PORT:-5090}
FLOOD_RATE=${FLOOD_RATE:-20000}
FLOOD_SECS=${FLOOD_SECS:-20}
LEGIT_RATE=${LEGIT_RATE:-100}
FLOODER=${FLOODER:-sipp}
REG_PORT=${REG_PORT:-5062}
AUTH_USER=bench
AUTH_PASS=benchpass
RUN_SECS=${RUN_SECS:-15}
REPEATS=${REPEATS:-3}
HOLD_MS=${HOLD_MS:-0}
MAX_FAIL_PCT=${MAX_FAIL_PCT:-1}
MAX_P95_MS=${MAX_P95_MS:-50}
CHILDREN=${CHILDREN:-2}
DID=${DID:-+15551230042}
PROXY_PORT=${PROXY_PORT:-5060}
PBX_PORT=${PBX_PORT:-5080}
TRUNK_PORT=${TRUNK_PORT:-5060}
ADMIN_PORT=${ADMIN_PORT:-8080}
BUILD_DIR=${BUILD_DIR:-/tmp/sipwarden-bench-build}
SIPWARDEN_LOG=${SIPWARDEN_LOG:-warn}
OUT_DIR=${OUT_DIR:-/tmp/sipwarden-bench.$(date +%Y%m%d-%H%M%S)}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-60}
PORT_WAIT=${PORT_WAIT:-300}
BENCH_NICE=${BENCH_NICE:-0}
PROFILE=${PROFILE:-0}
NICE="nice -n $BENCH_NICE"
SCN=$HERE/scenarios
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
T_START=$SECONDS

for p in "$PROXY_PORT" "$PBX_PORT" "$TRUNK_PORT" "$ADMIN_PORT" "$RUN_SECS" "$REPEATS" "$CHILDREN" "$HOLD_MS"; do
	[[ $p =~ ^[0-9]+$ ]] || { echo "not a number: $p" >&2; exit 2; }
done
for r in $CALL_RATES $EXTRA_RATES; do [[ $r =~ ^[0-9]+$ ]] || { echo "bad rate $r" >&2; exit 2; }; done
for p in $PROXIES; do [[ $p == kamailio || $p == sipwarden || $p == baseline ]] || { echo "unknown proxy $p" >&2; exit 2; }; done
[[ " $PROXIES " == *" baseline "* && -z ${BASELINE_REV:-} ]] && { echo "proxy baseline needs BASELINE_REV" >&2; exit 2; }
[[ $KIND == calls || $KIND == register || $KIND == flood ]] || { echo "KIND must be calls, register or flood" >&2; exit 2; }
if [[ $KIND == flood ]]; then
	for p in "$FLOOD_PORT" "$FLOOD_SECS" "$LEGIT_RATE"; do
		[[ $p =~ ^[0-9]+$ ]] || { echo "not a number: $p" >&2; exit 2; }
	done
	[[ $FLOODER == sipp || $FLOODER == blast ]] || { echo "FLOODER must be sipp or blast" >&2; exit 2; }
	[[ $FLOOD_RATE =~ ^[0-9]+$ && $FLOOD_RATE -gt 0 ]] || [[ $FLOODER == blast && $FLOOD_RATE == max ]] ||
		{ echo "FLOOD_RATE must be a number (or max with FLOODER=blast)" >&2; exit 2; }
	((FLOOD_SECS >= 6 && FLOOD_SECS <= 120)) || { echo "FLOOD_SECS must be 6..120" >&2; exit 2; }
fi
# what one completed SIPp "call" is
UNIT=calls
[[ $KIND == register ]] && UNIT=regs

mkdir -p "$OUT_DIR"
SUMMARY=$OUT_DIR/summary.txt
log() { echo "[$(date +%T)] $*" >&2; }
say() { echo "$*" | tee -a "$SUMMARY"; }

# ---------------------------------------------------------------- install --
ensure_tools() {
	local pkgs=()
	command -v sipp >/dev/null || pkgs+=(sip-tester)
	command -v python3 >/dev/null || pkgs+=(python3)
	[[ -x /usr/bin/time ]] || pkgs+=(time)
	command -v timeout >/dev/null || pkgs+=(coreutils)
	command -v ss >/dev/null || pkgs+=(iproute2)
	[[ $KIND == flood && $FLOODER == blast ]] && ! command -v gcc >/dev/null && pkgs+=(gcc libc6-dev)
	[[ " $PROXIES " == *" kamailio "* ]] && ! command -v kamailio >/dev/null && pkgs+=(kamailio kamailio-extra-modules)
	if ((${#pkgs[@]})); then
		log "installing: ${pkgs[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null 2>&1
		apt-get install -y -q "${pkgs[@]}" >/dev/null || { echo "apt-get install ${pkgs[*]} failed" >&2; exit 1; }
	fi
}

# ------------------------------------------------------ sipwarden binary ----
# The binary and examples/ are copied into OUT_DIR once, so a rebuild in the
# working tree by someone else during the run cannot swap them mid-sweep.
SW_BIN=$OUT_DIR/sipwarden
SW_EXAMPLES=$OUT_DIR/examples.src
SW_VERSION="n/a"
prepare_sipwarden() {
	local bin src
	if [[ -n ${SIPWARDEN_BIN:-} ]]; then
		bin=$SIPWARDEN_BIN
		src=$REPO
		SW_VERSION="binary $bin, examples from working tree $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)"
	elif [[ -n ${SIPWARDEN_REV:-} ]]; then
		local rev
		rev=$(git -C "$REPO" rev-parse --short "$SIPWARDEN_REV") || { echo "unknown revision $SIPWARDEN_REV" >&2; exit 1; }
		src=$BUILD_DIR/src-$rev
		if [[ ! -f $src/Cargo.toml ]]; then
			mkdir -p "$src"
			git -C "$REPO" archive "$rev" | tar -x -C "$src" || { echo "git archive $rev failed" >&2; exit 1; }
		fi
		log "building sipwarden $rev (clean snapshot in $src)"
		# A target directory per revision: cargo hashes path packages relative to the
		# workspace, and git archive gives files the commit's time, so two snapshots sharing
		# one target would each take the other's newer build for fresh.
		(cd "$src" && CARGO_TARGET_DIR=$BUILD_DIR/target-$rev cargo build --release -p sipwarden) >"$OUT_DIR/build.log" 2>&1 ||
			{ echo "cargo build failed, see $OUT_DIR/build.log" >&2; tail -20 "$OUT_DIR/build.log" >&2; exit 1; }
		bin=$BUILD_DIR/target-$rev/release/sipwarden
		SW_VERSION="commit $rev (clean snapshot)"
	else
		src=$REPO
		log "building sipwarden (cargo build --release -p sipwarden in $REPO)"
		(cd "$REPO" && cargo build --release -p sipwarden) >"$OUT_DIR/build.log" 2>&1 ||
			{ echo "cargo build failed, see $OUT_DIR/build.log (SIPWARDEN_REV=HEAD builds the last commit instead)" >&2
			  tail -20 "$OUT_DIR/build.log" >&2; exit 1; }
		bin=$REPO/target/release/sipwarden
		local dirty=""
		[[ -n $(git -C "$REPO" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null) ]] && dirty="+uncommitted changes"
		SW_VERSION="working tree $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$dirty"
	fi
	[[ -x $bin ]] || { echo "no sipwarden binary at $bin" >&2; exit 1; }
	cp "$bin" "$SW_BIN"
	rm -rf "$SW_EXAMPLES"
	cp -r "$src/examples" "$SW_EXAMPLES"
	rm -rf "$SW_EXAMPLES/lab/tls" "$SW_EXAMPLES/lab/admin.token"
	# examples/bench.toml: the lab config with the bench's ports, UDP+TCP only
	python3 - "$SW_EXAMPLES/lab.toml" "$SW_EXAMPLES/bench.toml" "$IP" "$PROXY_PORT" "$PBX_IP" "$PBX_PORT" \
		"$ADMIN_PORT" "$TRUNK_IP" "$TRUNK_PORT" <<'PY'
import re, sys
src, dst, ip, port, pip, pbx, admin, tip, tport = sys.argv[1:]
out, section = [], ""
for line in open(src).read().splitlines():
    m = re.match(r"^\s*\[+([^\]]+)\]+\s*$", line)
    if m:
        section = m.group(1)
    key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
    if section == "media":
        # signalling only: Kamailio's reference anchors no media
        continue
    if section == "listen" and key == "udp":
        line = f'udp = ["{ip}:{port}"]'
    elif section == "listen" and key == "tcp":
        line = f'tcp = ["{ip}:{port}"]'
    elif section == "listen" and key == "tls":
        line = "# tls listener dropped for the benchmark (UDP calls only)"
    elif section == "listen" and key == "wss":
        # 127.0.0.1:8443 is a lab port the harness does not wait for: not ours to take
        line = "# wss listener dropped for the benchmark (UDP calls only)"
    elif section == "pbx" and key == "address":
        line = f'address = "{pip}:{pbx}"'
    elif section == "pbx" and key == "networks":
        line = f'networks = ["{pip}/32"]'
    elif section == "trunk" and key == "networks":
        line = f'networks = ["{tip}/32"]'
    elif section == "trunk" and key == "proxy":
        line = f'proxy = "sip:{tip}:{tport}"'
    elif section == "admin" and key == "listen":
        line = f'listen = "{ip}:{admin}"'
    out.append(line)
open(dst, "w").write("# Rendered by bench/run.sh from examples/lab.toml\n" + "\n".join(out) + "\n")
PY
	# The bench phone's account (KIND=register): user bench, password benchpass, as HA1s.
	python3 - "$SW_EXAMPLES/bench-accounts.toml" "$AUTH_USER" "$AUTH_PASS" <<'PY'
import hashlib, sys
path, user, pw = sys.argv[1:]
a1 = f"{user}:sipwarden.lab:{pw}".encode()
open(path, "w").write(
    "# Rendered by bench/run.sh: the REGISTER benchmark's phone\n"
    'realm = "sipwarden.lab"\n\n[[account]]\n'
    f'user = "{user}"\nha1_md5 = "{hashlib.md5(a1).hexdigest()}"\n'
    f'ha1_sha256 = "{hashlib.sha256(a1).hexdigest()}"\n')
PY
	sed -i 's|^file = "examples/lab/accounts.toml"|file = "examples/bench-accounts.toml"|' "$SW_EXAMPLES/bench.toml"
	# The bench phone may register at any rate (Kamailio exempts it from pike likewise).
	sed -i 's|^allow = \[\]$|allow = ["'"$REG_IP"'/32"]|' "$SW_EXAMPLES/bench.toml"
	grep -q "^allow = \[\"$REG_IP/32\"\]" "$SW_EXAMPLES/bench.toml" ||
		{ echo "bench.toml: no [ban] allow line to exempt the bench phone" >&2; exit 1; }
	# KIND=flood: the flooder must be an ordinary endpoint-zone source for sipwarden
	python3 - "$SW_EXAMPLES/bench.toml" "$FLOOD_IP" <<'PY' || { echo "bench.toml trusts or allow-lists the flooder $FLOOD_IP" >&2; exit 1; }
import ipaddress, re, sys
ip = ipaddress.ip_address(sys.argv[2])
nets = re.findall(r'"(\d+\.\d+\.\d+\.\d+/\d+)"', open(sys.argv[1]).read())
sys.exit(1 if any(ip in ipaddress.ip_network(n, strict=False) for n in nets) else 0)
PY
	grep -q '^file = "examples/bench-accounts.toml"' "$SW_EXAMPLES/bench.toml" ||
		{ echo "bench.toml: no [accounts] file line to point at the bench account" >&2; exit 1; }
	if [[ -n ${SW_MAX_TRANSACTIONS:-} ]]; then
		[[ $SW_MAX_TRANSACTIONS =~ ^[0-9]+$ ]] || { echo "bad SW_MAX_TRANSACTIONS" >&2; exit 2; }
		printf '\n# bench diagnostic (SW_MAX_TRANSACTIONS), not the lab value\n[transactions]\nmax_transactions = %s\n' \
			"$SW_MAX_TRANSACTIONS" >>"$SW_EXAMPLES/bench.toml"
		SW_VERSION+=", max_transactions=$SW_MAX_TRANSACTIONS (diagnostic)"
	fi
}

# ------------------------------------------------------ kamailio rendering --
render_kamailio() {
	sed -e "s|^#!substdef \"!BENCH_PORT!.*|#!substdef \"!BENCH_PORT!$PROXY_PORT!g\"|" \
	    -e "s|^#!substdef \"!BENCH_DOWNSTREAM!.*|#!substdef \"!BENCH_DOWNSTREAM!$PBX_IP:$PBX_PORT!g\"|" \
	    -e "s|^#!substdef \"!BENCH_ADDRFILE!.*|#!substdef \"!BENCH_ADDRFILE!$OUT_DIR/address.list!g\"|" \
	    -e "s|^#!substdef \"!BENCH_CTL!.*|#!substdef \"!BENCH_CTL!unix:$OUT_DIR/kamailio_ctl!g\"|" \
	    -e "s|^children=[0-9]*|children=$CHILDREN|" \
	    "$HERE/kamailio.cfg" >"$OUT_DIR/kamailio.cfg"
	KAM_NOTE=""
	if [[ -n ${KAM_MAXBUFFER:-} ]]; then
		[[ $KAM_MAXBUFFER =~ ^[0-9]+$ ]] || { echo "bad KAM_MAXBUFFER" >&2; exit 2; }
		sed -i "/^children=/a maxbuffer=$KAM_MAXBUFFER   # bench diagnostic (KAM_MAXBUFFER)" "$OUT_DIR/kamailio.cfg"
		KAM_NOTE=" maxbuffer=$KAM_MAXBUFFER (diagnostic)"
	fi
	sed -e "s/^1 127.0.0.3 32 5060 trunk/1 $TRUNK_IP 32 $TRUNK_PORT trunk/" \
	    -e "s/^1 127.0.0.10 32 5080 pbx/1 $PBX_IP 32 $PBX_PORT pbx/" \
	    -e "s/^1 127.0.0.2 32 5062 authpeer/1 $REG_IP 32 $REG_PORT authpeer/" "$HERE/address.list" >"$OUT_DIR/address.list"
	# KIND=flood: the flooder must meet pike, so it is on no allow-list line
	if grep -v '^#' "$OUT_DIR/address.list" | awk '{print $2}' | grep -qx "$FLOOD_IP"; then
		echo "address.list allow-lists the flooder $FLOOD_IP" >&2; exit 1
	fi
	mkdir -p "$OUT_DIR/run"
}

# ------------------------------------------------------- process helpers ----
# Every process is started by this script and remembered as "pid:starttime",
# so that a recycled PID is never signalled.
STARTED=()
starttime() { awk '{sub(/^.*\) /, ""); print $20}' "/proc/$1/stat" 2>/dev/null; }
remember() { STARTED+=("$1:$(starttime "$1")"); }
descendants() { # pid -> all descendant pids (recursive)
	local kids k
	kids=$(awk -v p="$1" '{sub(/^[0-9]+ \(.*\) /, ""); if ($2 == p) print FILENAME}' /proc/[0-9]*/stat 2>/dev/null |
		sed 's|/proc/\([0-9]*\)/stat|\1|')
	for k in $kids; do echo "$k"; descendants "$k"; done
}
alive_same() { # pid:starttime still the same process?
	local pid=${1%%:*} st=${1#*:}
	[[ -e /proc/$pid ]] && [[ "$(starttime "$pid")" == "$st" ]]
}
stop_tree() { # SIGTERM a process we started, then SIGKILL what is left of its tree
	local root=$1 tree=() d
	for d in $root $(descendants "$root"); do tree+=("$d:$(starttime "$d")"); done
	alive_same "${tree[0]}" && kill -TERM "$root" 2>/dev/null
	for _ in $(seq 50); do alive_same "${tree[0]}" || break; sleep 0.1; done
	for d in "${tree[@]}"; do
		alive_same "$d" && kill -KILL "${d%%:*}" 2>/dev/null
	done
	wait "$root" 2>/dev/null
	return 0
}
cleanup() {
	local e
	for e in "${STARTED[@]}"; do
		alive_same "$e" && stop_tree "${e%%:*}"
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tree_ticks() { # utime+stime of pid and its descendants (all threads)
	local p t=0 v
	for p in "$1" $(descendants "$1"); do
		v=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo $t
}
# "busy_ticks elapsed_ticks_all_cpus" (the idle column under-counts on this VM)
sys_ticks() {
	awk -v hz="$CLK_TCK" -v n="$NCPU" 'FNR == 1 && FILENAME == "/proc/uptime" { up = $1 }
		FILENAME == "/proc/stat" && /^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9 }
		END { printf "%d %d\n", b, up * hz * n }' /proc/uptime /proc/stat
}
psi_us() { awk '/^some/ { sub("total=", "", $5); print $5 }' /proc/pressure/cpu 2>/dev/null || echo 0; }
hexport() { printf '%04X' "$1"; }
hexip() { local a b c d; IFS=. read -r a b c d <<<"$1"; printf '%02X%02X%02X%02X' "$d" "$c" "$b" "$a"; }
udp_bound() { grep -q " $(hexip "$1"):$(hexport "$2") 00000000:0000" /proc/net/udp; }
sock_drops() { # kernel drop counter of the UDP socket(s) bound to ip:port
	awk -v lp="$(hexip "$1"):$(hexport "$2")" '$2 == lp {d += $NF} END {print d + 0}' /proc/net/udp
}
wait_udp() { # ip port
	for _ in $(seq 100); do udp_bound "$1" "$2" && return 0; sleep 0.1; done
	return 1
}

# The lab's ports are shared with other people's tests on this machine.
# lab_listeners prints every listener on them (with its process).
lab_listeners() {
	{
		ss -Hlnup 2>/dev/null | awk '{print "udp", $0}'
		ss -Hlntp 2>/dev/null | awk '{print "tcp", $0}'
	} | awk -v ip="$IP" -v pip="$PBX_IP" -v tip="$TRUNK_IP" -v pp="$PROXY_PORT" -v bp="$PBX_PORT" -v tp="$TRUNK_PORT" \
		-v ap="$ADMIN_PORT" \
		-v fip="$FLOOD_IP" -v fp="$([[ $KIND == flood ]] && echo "$FLOOD_PORT")" '
		{ a = $5; n = split(a, x, ":"); port = x[n]; host = substr(a, 1, length(a) - length(port) - 1)
		  wild = (host == "0.0.0.0" || host == "*" || host == "[::]")
		  hit = 0
		  if ($1 == "udp" && port == pp && (host == ip || wild)) hit = 1
		  if ($1 == "udp" && port == bp && (host == pip || wild)) hit = 1
		  if ($1 == "udp" && port == tp && (host == tip || wild)) hit = 1
		  if ($1 == "tcp" && (port == pp || port == ap) && (host == ip || wild)) hit = 1
		  if ($1 == "udp" && fp != "" && port == fp && (host == fip || wild)) hit = 1
		  if (hit) print }'
}
wait_ports_free() {
	local t0=$SECONDS last=-999 busy
	while :; do
		busy=$(lab_listeners)
		[[ -z $busy ]] && return 0
		((SECONDS - t0 >= PORT_WAIT)) && { echo "lab ports still busy after ${PORT_WAIT}s:" >&2; echo "$busy" >&2; exit 1; }
		if ((SECONDS - last >= 30)); then
			log "lab ports busy (someone else's test?), waiting up to ${PORT_WAIT}s: $(echo "$busy" | awk '{print $1, $5, $NF}' | tr '\n' ' ')"
			last=$SECONDS
		fi
		sleep 2
	done
}
foreign_listeners() { # listeners on the lab ports whose PID is not one of ours
	local ours=" $* " line pid out=""
	while read -r line; do
		[[ -z $line ]] && continue
		for pid in $(grep -o 'pid=[0-9]*' <<<"$line" | cut -d= -f2); do
			[[ $ours == *" $pid "* ]] || out+="$pid,"
		done
	done < <(lab_listeners)
	echo "${out%,}"
}

wait_quiet() { # bounded wait for an idle machine; sets QUIET (busy % of the last 1 s)
	local t0=$SECONDS a b
	while :; do
		a=$(sys_ticks); sleep 1; b=$(sys_ticks)
		QUIET=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
			printf "%.0f", (y[2] > x[2]) ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0 }')
		((QUIET <= QUIET_PCT)) && return 0
		((SECONDS - t0 >= QUIET_MAX_WAIT)) && { log "machine still ${QUIET}% busy, running anyway"; return 0; }
	done
}

start_proxy() { # name tag
	local name=$1 tag=$2 logf=$OUT_DIR/$2.proxy.log
	if [[ $name == kamailio ]]; then
		$NICE timeout -k 5 900 kamailio -DD -E -m 512 -M 32 -Y "$OUT_DIR/run" -f "$OUT_DIR/kamailio.cfg" >"$logf" 2>&1 &
	else
		local dir=$OUT_DIR/$tag.scratch
		rm -rf "$dir"; mkdir -p "$dir"
		local bin=$SW_BIN examples=$SW_EXAMPLES
		[[ $name == baseline ]] && { bin=$BL_BIN; examples=$BL_EXAMPLES; }
		cp -r "$examples" "$dir/examples"
		(cd "$dir" && SIPWARDEN_LOG=$SIPWARDEN_LOG exec $NICE timeout -k 5 900 "$bin" serve --config examples/bench.toml) >"$logf" 2>&1 &
	fi
	PROXY_PID=$!
	remember "$PROXY_PID"
	wait_udp "$IP" "$PROXY_PORT" || { echo "$name did not bind udp $IP:$PROXY_PORT (see $logf)" >&2; tail -5 "$logf" >&2; exit 1; }
	sleep 0.5
}
start_uas() { # tag count
	$NICE timeout -k 5 $((RUN_SECS + 90)) sipp -sf "$SCN/uas_rr.xml" -i $PBX_IP -p "$PBX_PORT" -t u1 -nostdin \
		-m $((2 * $2 + 100)) -buff_size 4194304 -timeout $((RUN_SECS + 75))s \
		-trace_err -error_file "$OUT_DIR/$1.uas.err" -max_log_size 20000000 \
		-trace_stat -stf "$OUT_DIR/$1.uas.stat.csv" -fd 1 \
		>"$OUT_DIR/$1.uas.out" 2>&1 &
	UAS_PID=$!
	remember "$UAS_PID"
	wait_udp "$PBX_IP" "$PBX_PORT" || { echo "uas did not start (see $OUT_DIR/$1.uas.out)" >&2; exit 1; }
}

# ------------------------------------------------------------ one run -------
# calls_run NAME RATE IDX -> prints one summary line
calls_run() {
	local name=$1 rate=$2 i=$3 attempt
	local tag="$name.r$rate.$i" count=$((rate * RUN_SECS))
	for attempt in 1 2 3; do
		wait_ports_free
		wait_quiet
		local load1
		load1=$(cut -d' ' -f1 /proc/loadavg)
		start_proxy "$name" "$tag"
		UAS_PID=""
		[[ $KIND == calls ]] && start_uas "$tag" "$count"
		local p0 u0=0 s0 pd0 ud0
		p0=$(tree_ticks "$PROXY_PID"); s0=$(psi_us)
		[[ -n $UAS_PID ]] && u0=$(tree_ticks "$UAS_PID")
		pd0=$(sock_drops $IP "$PROXY_PORT"); ud0=$(sock_drops $PBX_IP "$PBX_PORT")
		rm -f "$OUT_DIR"/*_rtt.csv
		local client
		if [[ $KIND == register ]]; then
			client=(-sf "$SCN/reg_auth.xml" -i $REG_IP -p "$REG_PORT" -s "$AUTH_USER" -au "$AUTH_USER" -ap "$AUTH_PASS")
		else
			client=(-sf "$SCN/uac_invite.xml" -i $TRUNK_IP -p "$TRUNK_PORT" -s "$DID" -d "$HOLD_MS")
		fi
		(cd "$OUT_DIR" && /usr/bin/time -f "%U %S %e" -o "$OUT_DIR/$tag.time" \
			$NICE timeout -k 5 $((RUN_SECS + 45)) sipp $IP:"$PROXY_PORT" "${client[@]}" -t u1 -nostdin \
			-r "$rate" -rp 1000 -m "$count" -l $((rate * 2 + 100)) -buff_size 4194304 \
			-recv_timeout 5000 -timeout $((RUN_SECS + 30))s \
			-trace_stat -stf "$OUT_DIR/$tag.stat.csv" -fd 1 -trace_rtt -rtt_freq 1 \
			-trace_err -error_file "$OUT_DIR/$tag.uac.err" -max_log_size 20000000 \
			>"$OUT_DIR/$tag.sipp.out" 2>&1)
		local p1 u1=0 s1 pd1 ud1 wall ccpu rcvbuf
		# effective receive buffer of the proxy's UDP socket(s) (kernel doubles SO_RCVBUF)
		rcvbuf=$(ss -Hlumn "src $IP:$PROXY_PORT" 2>/dev/null | grep -o 'rb[0-9]*' | tr -d rb | sort -u | paste -sd/)
		p1=$(tree_ticks "$PROXY_PID"); s1=$(psi_us)
		[[ -n $UAS_PID ]] && u1=$(tree_ticks "$UAS_PID")
		pd1=$(sock_drops $IP "$PROXY_PORT"); ud1=$(sock_drops $PBX_IP "$PBX_PORT")
		# /usr/bin/time prepends "Command exited with non-zero status N" when
		# SIPp saw failed calls: the numbers are on the last line
		wall=$(tail -1 "$OUT_DIR/$tag.time" | awk '{print $3}')
		ccpu=$(tail -1 "$OUT_DIR/$tag.time" | awk '{if ($3 > 0) printf "%.1f", 100 * ($1 + $2) / $3; else print 0}')
		local ours foreign
		ours="$PROXY_PID $(descendants "$PROXY_PID" | tr '\n' ' ')"
		[[ -n $UAS_PID ]] && ours+=" $UAS_PID $(descendants "$UAS_PID" | tr '\n' ' ')"
		foreign=$(foreign_listeners $ours)
		if [[ $name != kamailio ]]; then
			python3 - "http://$IP:$ADMIN_PORT/metrics" >"$OUT_DIR/$tag.metrics.txt" 2>&1 <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())
PY
		fi
		local rtt
		rtt=$(ls "$OUT_DIR"/*_rtt.csv 2>/dev/null | head -1)
		[[ -n $rtt ]] && mv "$rtt" "$OUT_DIR/$tag.rtt.csv" && rtt="$OUT_DIR/$tag.rtt.csv"
		[[ -n $UAS_PID ]] && stop_tree "$UAS_PID"
		stop_tree "$PROXY_PID"
		if [[ -n $foreign ]]; then
			log "$tag: foreign process(es) $foreign listened on a lab port during the run; discarding it (attempt $attempt)"
			mv "$OUT_DIR/$tag.stat.csv" "$OUT_DIR/$tag.discarded$attempt.stat.csv" 2>/dev/null
			((attempt < 3)) && continue
		fi
		local stats ustats n503 swstate="-"
		n503=$(grep -c "received 'SIP/2.0 503" "$OUT_DIR/$tag.uac.err" 2>/dev/null)
		if [[ $name != kamailio ]]; then
			# sipwarden's own gauges when the client finished (calls, transactions held)
			swstate=$(awk '/^sipwarden_calls /{c=$2} /^sipwarden_transactions_client /{tc=$2}
				/^sipwarden_transactions_server /{ts=$2} /^sipwarden_inbound_dropped_total /{d=$2}
				END {printf "sw_calls_left=%s sw_txns_held=%s sw_inbound_dropped=%s", c, tc + ts, d}' "$OUT_DIR/$tag.metrics.txt")
		fi
		stats=$(python3 "$HERE/parse_sipp.py" "$OUT_DIR/$tag.stat.csv" "${rtt:--}" 2>/dev/null) || stats=""
		ustats=""
		[[ -n $UAS_PID ]] && { ustats=$(python3 "$HERE/parse_sipp.py" "$OUT_DIR/$tag.uas.stat.csv" 2>/dev/null) || ustats=""; }
		python3 - "$stats" "$ustats" "$((p1 - p0))" "$((u1 - u0))" "${wall:-0}" "$CLK_TCK" "$s0" "$s1" <<PY
import sys
st, ust, pt, ut, wall, hz, s0, s1 = sys.argv[1:]
d = dict(t.split("=", 1) for t in st.split()) if st else {}
u = dict(t.split("=", 1) for t in ust.split()) if ust else {}
wall = float(wall) or float("nan")
created = float(d.get("created", 0)); ok = float(d.get("ok", 0))
fail = 100 * (created - ok) / created if created else 100.0
pcpu = int(pt) / int(hz)
out = ["$name", "$KIND", "rate=$rate", f"${UNIT}_per_s={d.get('ok_per_s', '0')}", f"fail_pct={fail:.2f}"]
for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
    out.append(f"{k}={d.get(k, 'nan')}")
out += [f"ok={d.get('ok', 0)}", f"created={d.get('created', 0)}", f"uac_retrans={d.get('retrans', 'nan')}",
        f"uas_retrans={u.get('retrans', 'nan')}", f"uas_calls={u.get('created', 'nan')}",
        f"proxy_cpu_pct={100 * pcpu / wall:.1f}",
        f"cpu_ms_per_${UNIT%s}={1000 * pcpu / ok if ok else float('nan'):.3f}",
        f"uas_cpu_pct={100 * int(ut) / int(hz) / wall:.1f}", "uac_cpu_pct=$ccpu",
        "proxy_sock_drops=$((pd1 - pd0))", "proxy_rcvbuf=${rcvbuf:-nan}", "uas_sock_drops=$((ud1 - ud0))",
        f"cpu_pressure_pct={100 * (int(s1) - int(s0)) / (wall * 1e6):.1f}",
        "uac_got_503=${n503:-0}"] + ("$swstate".split() if "$swstate" != "-" else []) + [
        "prerun_busy_pct=$QUIET", "load1=$load1", "foreign=${foreign:-none}", "run=$tag"]
print(" ".join(out))
PY
		return 0
	done
}

# ---------------------------------------------------------- flood run -------
tree_rss_kb() { # resident memory of pid and its descendants (kB; shared pages counted per process)
	local p t=0 v
	for p in "$1" $(descendants "$1"); do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo $t
}
sw_get() { # path file [token file]: GET from sipwarden's admin listener
	python3 - "http://$IP:$ADMIN_PORT$1" "${3:-}" >"$2" 2>&1 <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1])
if sys.argv[2]:
    req.add_header("Authorization", "Bearer " + open(sys.argv[2]).read().strip())
print(urllib.request.urlopen(req, timeout=3).read().decode())
PY
}
sw_metric() { # file name -> value (0 when absent)
	awk -v n="$2" '$1 == n {v = $2} END {print v + 0}' "$1" 2>/dev/null
}
kam_rcv_requests() {
	[[ -n $KAMCMD ]] && $KAMCMD stats.get_statistics rcv_requests 2>/dev/null | awk '{print $NF}'
}

# flood_run NAME IDX -> prints one summary line
flood_run() {
	# a subshell: stop what this run started if it is cut short (a subshell does not
	# inherit the main script's INT/TERM traps)
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	local name=$1 i=$2 attempt
	local tag="$name.flood.$FLOODER.$i"
	local count=$((LEGIT_RATE * FLOOD_SECS))
	for attempt in 1 2 3; do
		wait_ports_free
		wait_quiet
		local load1
		load1=$(cut -d' ' -f1 /proc/loadavg)
		start_proxy "$name" "$tag"
		# Our proxy must be the one on the port before anything is sent: on this shared
		# machine someone else's gateway may have taken the port between the wait and the
		# start (sipwarden's UDP socket allows SO_REUSEPORT, so ours may even share it).
		local early
		early=$(foreign_listeners "$PROXY_PID" $(descendants "$PROXY_PID"))
		if [[ -n $early ]] || ! alive_same "$PROXY_PID:$(starttime "$PROXY_PID")" || [[ -z $(descendants "$PROXY_PID") ]]; then
			log "$tag: our $name is not alone on the lab ports (foreign: ${early:-none}; see $OUT_DIR/$tag.proxy.log); nothing sent, retrying (attempt $attempt)"
			stop_tree "$PROXY_PID"
			mv "$OUT_DIR/$tag.proxy.log" "$OUT_DIR/$tag.discarded$attempt.proxy.log" 2>/dev/null
			sleep 5
			continue
		fi
		UAS_PID=""
		local legit_pid="" ldir=$OUT_DIR/$tag.legit.d
		rm -rf "$ldir"; mkdir -p "$ldir"
		if ((LEGIT_RATE > 0)); then
			RUN_SECS=$FLOOD_SECS start_uas "$tag" "$count"
			# legitimate trunk calls, from the carrier, for the whole flood
			(cd "$ldir" && exec $NICE timeout -k 5 $((FLOOD_SECS + 45)) sipp $IP:"$PROXY_PORT" -sf "$SCN/uac_invite.xml" \
				-i $TRUNK_IP -p "$TRUNK_PORT" -t u1 -nostdin -s "$DID" -d "$HOLD_MS" -r "$LEGIT_RATE" -rp 1000 \
				-m "$count" -l $((LEGIT_RATE * 2 + 100)) -buff_size 4194304 -recv_timeout 5000 \
				-timeout $((FLOOD_SECS + 30))s -trace_stat -stf "$OUT_DIR/$tag.legit.stat.csv" -fd 1 \
				-trace_rtt -rtt_freq 1 -trace_err -error_file "$OUT_DIR/$tag.legit.err" -max_log_size 20000000 \
				>"$OUT_DIR/$tag.legit.sipp.out" 2>&1) &
			legit_pid=$!
			remember "$legit_pid"
			sleep 0.3
		fi
		local p0 s0 pd0 ud0 r0="" rss0
		[[ $name != kamailio ]] && sw_get /metrics "$OUT_DIR/$tag.metrics0.txt"
		r0=$([[ $name == kamailio ]] && kam_rcv_requests)
		rss0=$(tree_rss_kb "$PROXY_PID")
		p0=$(tree_ticks "$PROXY_PID"); s0=$(psi_us)
		pd0=$(sock_drops $IP "$PROXY_PORT"); ud0=$(sock_drops $PBX_IP "$PBX_PORT")
		# The flood, bounded by FLOOD_SECS and timeout(1). It runs in the background and is
		# remembered, so that cleanup stops it if this script is stopped.
		local flood_pid
		if [[ $FLOODER == blast ]]; then
			local brate=$FLOOD_RATE
			[[ $brate == max ]] && brate=0
			/usr/bin/time -f "%U %S %e" -o "$OUT_DIR/$tag.time" \
				$NICE timeout -k 5 $((FLOOD_SECS + 15)) "$OUT_DIR/reg_blast" $FLOOD_IP "$FLOOD_PORT" $IP "$PROXY_PORT" \
				"$FLOOD_SECS" "$brate" >"$OUT_DIR/$tag.flood.out" 2>&1 &
			flood_pid=$!
		else
			(cd "$OUT_DIR" && exec /usr/bin/time -f "%U %S %e" -o "$OUT_DIR/$tag.time" \
				$NICE timeout -k 5 $((FLOOD_SECS + 45)) sipp $IP:"$PROXY_PORT" -sf "$SCN/reg_flood.xml" \
				-i $FLOOD_IP -p "$FLOOD_PORT" -t u1 -nostdin -r "$FLOOD_RATE" -rp 1000 -m $((FLOOD_RATE * FLOOD_SECS)) \
				-l $((FLOOD_RATE * 2 + 100)) -buff_size 4194304 -recv_timeout 5000 -timeout $((FLOOD_SECS + 30))s \
				-deadcall_wait 5000 -trace_stat -stf "$OUT_DIR/$tag.stat.csv" -fd 1 \
				>"$OUT_DIR/$tag.flood.out" 2>&1) &
			flood_pid=$!
		fi
		remember "$flood_pid"
		# Guard: should our proxy die or a foreign listener appear on the lab ports, stop
		# the flood and the calls at once, so that they never hit someone else's gateway.
		local guard="" gours proxy_kids flood_st
		sleep 0.2
		proxy_kids=$(descendants "$PROXY_PID" | tr '\n' ' ')
		gours="$PROXY_PID $proxy_kids ${UAS_PID:-} $([[ -n $UAS_PID ]] && descendants "$UAS_PID" | tr '\n' ' ')"
		gours+=" ${legit_pid:-} $([[ -n $legit_pid ]] && descendants "$legit_pid" | tr '\n' ' ')"
		gours+=" $flood_pid $(descendants "$flood_pid" | tr '\n' ' ')"
		flood_st=$(starttime "$flood_pid")
		while alive_same "$flood_pid:$flood_st"; do
			sleep 1
			alive_same "$flood_pid:$flood_st" || break
			local whom alive=yes k
			whom=$(foreign_listeners $gours)
			for k in $proxy_kids; do [[ -e /proc/$k ]] || alive=no; done
			if [[ -n $whom || $alive == no ]]; then
				guard="aborted(foreign:${whom:-none},proxy_alive:$alive)"
				log "$tag: $guard: stopping the flood and the calls"
				stop_tree "$flood_pid"
				[[ -n $legit_pid ]] && stop_tree "$legit_pid"
				break
			fi
		done
		wait "$flood_pid" 2>/dev/null
		local p1 s1 pd1 ud1 r1="" rss1 rcvbuf banned="n/a"
		p1=$(tree_ticks "$PROXY_PID"); s1=$(psi_us)
		pd1=$(sock_drops $IP "$PROXY_PORT"); ud1=$(sock_drops $PBX_IP "$PBX_PORT")
		rss1=$(tree_rss_kb "$PROXY_PID")
		rcvbuf=$(ss -Hlumn "src $IP:$PROXY_PORT" 2>/dev/null | grep -o 'rb[0-9]*' | tr -d rb | sort -u | paste -sd/)
		if [[ $name == kamailio ]]; then
			r1=$(kam_rcv_requests)
			if [[ -n $KAMCMD ]]; then
				$KAMCMD htable.dump ipban >"$OUT_DIR/$tag.bans.txt" 2>&1
				if grep -q "$FLOOD_IP" "$OUT_DIR/$tag.bans.txt"; then banned=yes; else banned=no; fi
			fi
		else
			sw_get /metrics "$OUT_DIR/$tag.metrics.txt"
			sw_get /api/bans "$OUT_DIR/$tag.bans.txt" "$OUT_DIR/$tag.scratch/examples/lab/admin.token"
			if grep -q "\"$FLOOD_IP\"" "$OUT_DIR/$tag.bans.txt"; then banned=yes; else banned=no; fi
		fi
		local ours foreign
		ours="$PROXY_PID $(descendants "$PROXY_PID" | tr '\n' ' ')"
		[[ -n $UAS_PID ]] && ours+=" $UAS_PID $(descendants "$UAS_PID" | tr '\n' ' ')"
		# the legit UAC is ours too (it binds the carrier's 127.0.0.3:5060)
		[[ -n $legit_pid ]] && ours+=" $legit_pid $(descendants "$legit_pid" | tr '\n' ' ')"
		foreign=$(foreign_listeners $ours)
		[[ -n $guard ]] && foreign+="${foreign:+,}$guard"
		local lstats="-" n503=0
		if [[ -n $legit_pid ]]; then
			wait "$legit_pid"
			local rtt
			rtt=$(ls "$ldir"/*_rtt.csv 2>/dev/null | head -1)
			[[ -n $rtt ]] && mv "$rtt" "$OUT_DIR/$tag.legit.rtt.csv"
			lstats=$(python3 "$HERE/parse_sipp.py" "$OUT_DIR/$tag.legit.stat.csv" "$OUT_DIR/$tag.legit.rtt.csv" 2>/dev/null) || lstats="-"
			n503=$(grep -c "received 'SIP/2.0 503" "$OUT_DIR/$tag.legit.err" 2>/dev/null)
			# the UAS had calls in flight until the UAC ended
			[[ $name != kamailio ]] && sw_get /metrics "$OUT_DIR/$tag.metrics2.txt"
			stop_tree "$UAS_PID"
		fi
		# proxy state once the calls are over
		local rss2
		rss2=$(tree_rss_kb "$PROXY_PID")
		stop_tree "$PROXY_PID"
		if [[ -n $foreign ]]; then
			log "$tag: foreign process(es) $foreign listened on a lab port during the run; discarding it (attempt $attempt)"
			if ((attempt < 3)); then
				mv "$OUT_DIR/$tag.flood.out" "$OUT_DIR/$tag.discarded$attempt.flood.out" 2>/dev/null
				continue
			fi
		fi
		local fstats="-"
		if [[ $FLOODER == blast ]]; then
			fstats=$(grep '^blast ' "$OUT_DIR/$tag.flood.out" | tail -1)
		else
			fstats=$(python3 "$HERE/parse_sipp.py" "$OUT_DIR/$tag.stat.csv" 2>/dev/null) || fstats="-"
		fi
		local swstate="-"
		if [[ $name != kamailio ]]; then
			local m0=$OUT_DIR/$tag.metrics0.txt m1=$OUT_DIR/$tag.metrics.txt m2=$OUT_DIR/$tag.metrics2.txt
			swstate="sw_udp_read=$(($(sw_metric "$m1" sipwarden_udp_received_total) - $(sw_metric "$m0" sipwarden_udp_received_total)))"
			swstate+=" sw_banned_dropped=$(($(sw_metric "$m1" sipwarden_banned_dropped_total) - $(sw_metric "$m0" sipwarden_banned_dropped_total)))"
			swstate+=" sw_bans_flood=$(sw_metric "$m1" sipwarden_bans_flood_total) sw_bans_active=$(sw_metric "$m1" sipwarden_bans_active)"
			swstate+=" sw_inbound_dropped=$(sw_metric "$m1" sipwarden_inbound_dropped_total)"
			swstate+=" sw_parse_errors=$(sw_metric "$m1" sipwarden_parse_errors_total)"
			swstate+=" sw_rejected=$(sw_metric "$m1" sipwarden_requests_rejected_total)"
			[[ -f $m2 ]] && swstate+=" sw_calls_left=$(sw_metric "$m2" sipwarden_calls)"
		fi
		python3 - "$fstats" "$lstats" "$((p1 - p0))" "$CLK_TCK" "$s0" "$s1" "$((pd1 - pd0))" "$((ud1 - ud0))" \
			"${r0:-}" "${r1:-}" "$rss0" "$rss1" "$rss2" "$swstate" <<PY
import sys
fst, lst, pt, hz, s0, s1, drops, udrops, r0, r1, rss0, rss1, rss2, sw = sys.argv[1:]
f = dict(t.split("=", 1) for t in fst.split() if "=" in t) if fst != "-" else {}
# /usr/bin/time: the numbers are on the last line
t = [l for l in open("$OUT_DIR/$tag.time").read().split("\n") if l.strip()]
tu, ts, te = (float(x) for x in t[-1].split()) if t else (0.0, 0.0, 0.0)
if "$FLOODER" == "blast":
    sent = int(f.get("sent", 0)); wall = float(f.get("span_s", 0)) or float("nan")
    replies = int(f.get("replies", 0)); tail = int(f.get("replies_last5s", -1))
    extra = [f"first_reply_ms={f.get('first_reply_ms', 'nan')}", f"last_reply_ms={f.get('last_reply_ms', 'nan')}",
             f"send_errors={f.get('send_errors', 'nan')}"]
else:
    sent = int(f.get("created", 0)); wall = te or float("nan")
    replies = int(f.get("dead_msgs", 0)) + int(f.get("ooc_msgs", 0))
    series = [int(x) for x in f.get("stray_replies_series", "").split(",") if x]
    # replies in the last 5 stat periods (1 s each)
    tail = sum(series[-5:]) if series else -1
    extra = []
drops = int(drops)
pcpu = int(pt) / int(hz)
out = ["$name", "flood", "flooder=$FLOODER", "offered=$FLOOD_RATE", f"sent_per_s={sent / wall:.0f}", f"sent={sent}",
       f"wall_s={wall:.2f}", f"sock_drops={drops}", f"absorbed_per_s={(sent - drops) / wall:.0f}"]
# what the proxy itself read: Kamailio's rcv_requests (requests it parsed), sipwarden's
# udp_received (every datagram its reader took off the socket); both include the legit calls
if r0 and r1:
    out.append(f"proxy_read_per_s={(int(r1) - int(r0)) / wall:.0f}")
elif "sw_udp_read=" in sw:
    out.append(f"proxy_read_per_s={int(sw.split('sw_udp_read=')[1].split()[0]) / wall:.0f}")
out += [f"replies={replies}", f"replies_last5s={tail}", f"cut_off={'yes' if tail == 0 and 0 < sent and replies < sent else 'no'}",
        "banned=$banned", f"proxy_cpu_pct={100 * pcpu / wall:.1f}",
        f"cpu_us_per_msg={1e6 * pcpu / (sent - drops) if sent > drops else float('nan'):.2f}",
        f"flooder_cpu_pct={100 * (tu + ts) / te if te else 0:.1f}"] + extra
if lst != "-":
    l = dict(x.split("=", 1) for x in lst.split() if "=" in x)
    c, ok = float(l.get("created", 0)), float(l.get("ok", 0))
    out += ["legit_rate=$LEGIT_RATE", f"legit_ok={l.get('ok', 0)}", f"legit_created={l.get('created', 0)}",
            f"legit_fail_pct={100 * (c - ok) / c if c else 100:.2f}"]
    out += [f"legit_{k}={l.get(k, 'nan')}" for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")]
    out += [f"legit_retrans={l.get('retrans', 'nan')}", "legit_503=${n503:-0}", f"uas_sock_drops={udrops}"]
out += ["proxy_rcvbuf=${rcvbuf:-nan}", f"proxy_rss_mb_start={int(rss0) / 1024:.1f}",
        f"proxy_rss_mb_end={int(rss1) / 1024:.1f}", f"proxy_rss_mb_after={int(rss2) / 1024:.1f}",
        f"cpu_pressure_pct={100 * (int(s1) - int(s0)) / (wall * 1e6):.1f}"]
if sw != "-":
    out += sw.split()
out += ["prerun_busy_pct=$QUIET", "load1=$load1", "foreign=${foreign:-none}", "run=$tag"]
print(" ".join(out))
PY
		return 0
	done
}

passes() { # line rate -> 0 if within the criteria
	python3 - "$1" "$2" "$MAX_FAIL_PCT" "$MAX_P95_MS" <<'PY'
import sys
d = dict(t.split("=", 1) for t in sys.argv[1].split() if "=" in t)
rate, maxfail, maxp95 = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
try:
    done = d["calls_per_s"] if "calls_per_s" in d else d["regs_per_s"]
    ok = (float(d["fail_pct"]) < maxfail and float(d["p95_ms"]) <= maxp95
          and float(done) >= 0.95 * rate and d.get("foreign", "none") == "none")
except (KeyError, ValueError):
    ok = False
sys.exit(0 if ok else 1)
PY
}

# ------------------------------------------------------------------ main ----
ensure_tools
[[ " $PROXIES " == *" sipwarden "* ]] && prepare_sipwarden
BL_BIN=$OUT_DIR/baseline BL_EXAMPLES=$OUT_DIR/baseline-examples.src BL_VERSION="n/a"
if [[ " $PROXIES " == *" baseline "* ]]; then
	# the same preparation, into the baseline's own binary and examples
	sw=("$SW_BIN" "$SW_EXAMPLES" "$SW_VERSION")
	SW_BIN=$BL_BIN SW_EXAMPLES=$BL_EXAMPLES
	SIPWARDEN_BIN="" SIPWARDEN_REV=$BASELINE_REV prepare_sipwarden
	BL_VERSION=$SW_VERSION
	SW_BIN=${sw[0]} SW_EXAMPLES=${sw[1]} SW_VERSION=${sw[2]}
fi
[[ " $PROXIES " == *" kamailio "* ]] && render_kamailio
KAMCMD=""
command -v kamcmd >/dev/null && KAMCMD="kamcmd -s unix:$OUT_DIR/kamailio_ctl"
if [[ $KIND == flood && $FLOODER == blast ]]; then
	gcc -O2 -Wall -o "$OUT_DIR/reg_blast" "$HERE/reg_blast.c" || { echo "gcc reg_blast.c failed" >&2; exit 1; }
fi
{
	if [[ $KIND == flood ]]; then
		echo "# $(date -Is) kind=flood proxies=[$PROXIES] flooder=$FLOODER flood_rate=$FLOOD_RATE flood_secs=$FLOOD_SECS legit_rate=$LEGIT_RATE repeats=$REPEATS hold_ms=$HOLD_MS"
		echo "# flood $FLOOD_IP:$FLOOD_PORT -> proxy $IP:$PROXY_PORT, REGISTER without credentials ($([[ $FLOODER == blast ]] && echo bench/reg_blast.c || echo scenarios/reg_flood.xml)), allow-listed by neither; legit trunk uac $TRUNK_IP:$TRUNK_PORT -> proxy -> pbx uas $PBX_IP:$PBX_PORT, did=$DID, udp"
	else
	echo "# $(date -Is) kind=$KIND proxies=[$PROXIES] rates=[$CALL_RATES] extra_rates=[$EXTRA_RATES] run_secs=$RUN_SECS repeats=$REPEATS hold_ms=$HOLD_MS"
	fi
	if [[ $KIND == flood ]]; then
		:
	elif [[ $KIND == register ]]; then
		echo "# phone uac $REG_IP:$REG_PORT -> proxy $IP:$PROXY_PORT, REGISTER -> 401 -> REGISTER+Authorization -> 200, user=$AUTH_USER, udp; max_fail_pct=$MAX_FAIL_PCT max_p95_ms=$MAX_P95_MS min_achieved=95%"
	else
		echo "# trunk uac $TRUNK_IP:$TRUNK_PORT -> proxy $IP:$PROXY_PORT -> pbx uas $PBX_IP:$PBX_PORT, did=$DID, udp; max_fail_pct=$MAX_FAIL_PCT max_p95_ms=$MAX_P95_MS min_achieved=95%"
	fi
	[[ " $PROXIES " == *" kamailio "* ]] && echo "# kamailio: $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //') children=$CHILDREN -m 512 -M 32${KAM_NOTE:-}"
	echo "# sipwarden: $SW_VERSION, SIPWARDEN_LOG=$SIPWARDEN_LOG"
	[[ " $PROXIES " == *" baseline "* ]] && echo "# baseline: sipwarden $BL_VERSION"
	echo "# $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*') kernel=$(uname -r) cpus=$NCPU model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p') nice=$BENCH_NICE loadavg=[$(cut -d' ' -f1-3 /proc/loadavg)]"
} | tee -a "$SUMMARY"

if [[ $KIND == flood ]]; then
	declare -A FLINES FFINAL
	for i in $(seq 1 "$REPEATS"); do
		for p in $PROXIES; do
			log "$p: flood run $i ($FLOODER at $FLOOD_RATE/s for ${FLOOD_SECS}s, legit $LEGIT_RATE calls/s)"
			line=""
			for try in 1 2 3; do
				line=$(flood_run "$p" "$i")
				[[ -n $line ]] && break
				log "$p flood run $i gave no result (lab ports busy for PORT_WAIT?), try $try of 3"
			done
			if [[ -z $line ]]; then
				say "run: $p flood run $i gave no result (lab ports busy for PORT_WAIT? see above); not counted"
				continue
			fi
			say "run: $line"
			FLINES[$p]+="$line"$'\n'
		done
	done
	for p in $PROXIES; do
		[[ -n ${FLINES[$p]:-} ]] || { say "FINAL $p flood no run"; continue; }
		FFINAL[$p]=$(printf '%s' "${FLINES[$p]}" | python3 "$HERE/parse_sipp.py" median)
		say "FINAL ${FFINAL[$p]}"
	done
	ref=kamailio; [[ -n ${FFINAL[baseline]:-} ]] && ref=baseline
	if [[ -n ${FFINAL[sipwarden]:-} && -n ${FFINAL[$ref]:-} ]]; then
		python3 - "${FFINAL[sipwarden]}" "${FFINAL[$ref]}" "$ref" <<'PY' | tee -a "$SUMMARY"
import sys
def kv(s):
    return dict(t.split("=", 1) for t in s.split() if "=" in t)
sw, ka = kv(sys.argv[1]), kv(sys.argv[2])
ref = sys.argv[3]
def r(k):
    try:
        return f"{float(sw[k]) / float(ka[k]):.2f}"
    except (KeyError, ValueError, ZeroDivisionError):
        return "nan"
print(f"RATIO sipwarden/{ref} absorbed_per_s={r('absorbed_per_s')} (sipwarden {sw.get('absorbed_per_s')}, {ref} {ka.get('absorbed_per_s')}) "
      f"proxy_cpu_pct={r('proxy_cpu_pct')} (sipwarden {sw.get('proxy_cpu_pct')}, {ref} {ka.get('proxy_cpu_pct')}) "
      f"cpu_us_per_msg={r('cpu_us_per_msg')} sock_drops sipwarden {sw.get('sock_drops')} {ref} {ka.get('sock_drops')}")
PY
	fi
	say "# finished $(date -Is), $((SECONDS - T_START)) s, loadavg=[$(cut -d' ' -f1-3 /proc/loadavg)]"
	log "outputs in $OUT_DIR (summary: $SUMMARY)"
	exit 0
fi

declare -A ALIVE BEST BESTLINES
for p in $PROXIES; do ALIVE[$p]=1; BEST[$p]=""; BESTLINES[$p]=""; done
step() { # rate: one run per proxy still passing
	local r=$1 p line
	for p in $PROXIES; do
		((ALIVE[$p])) || continue
		log "$p: rate $r"
		line=$(calls_run "$p" "$r" 1)
		say "sweep: $line"
		if passes "$line" "$r"; then BEST[$p]=$r; BESTLINES[$p]=$line; else ALIVE[$p]=0; fi
	done
}
for r in $CALL_RATES; do step "$r"; done
for r in $EXTRA_RATES; do step "$r"; done
for i in $(seq 2 "$REPEATS"); do
	for p in $PROXIES; do
		[[ -n ${BEST[$p]} ]] || continue
		log "$p: repeat $i at rate ${BEST[$p]}"
		line=$(calls_run "$p" "${BEST[$p]}" "$i")
		say "repeat: $line"
		BESTLINES[$p]+=$'\n'"$line"
	done
done

declare -A FINAL
for p in $PROXIES; do
	if [[ -z ${BEST[$p]} ]]; then
		say "FINAL $p $KIND no passing rate"
		continue
	fi
	npass=0
	while read -r l; do passes "$l" "${BEST[$p]}" && npass=$((npass + 1)); done <<<"${BESTLINES[$p]}"
	FINAL[$p]="$(echo "${BESTLINES[$p]}" | python3 "$HERE/parse_sipp.py" median) runs_passing=$npass"
	say "FINAL ${FINAL[$p]}"
done

# the ratios: against Kamailio, or against the baseline build in a before/after run
ref=kamailio; [[ -n ${FINAL[baseline]:-} ]] && ref=baseline
if [[ -n ${FINAL[sipwarden]:-} && -n ${FINAL[$ref]:-} ]]; then
	python3 - "${FINAL[sipwarden]}" "${FINAL[$ref]}" "$SUMMARY" "$UNIT" "$ref" <<'PY' | tee -a "$SUMMARY"
import sys
unit = sys.argv[4]
ref = sys.argv[5]
one = unit[:-1]
def kv(s):
    d = dict(t.split("=", 1) for t in s.split() if "=" in t)
    # one spelling below, whatever the kind
    for a, b in ((f"{unit}_per_s", "calls_per_s"), (f"cpu_ms_per_{one}", "cpu_ms_per_call")):
        if a in d:
            d[b] = d[a]
    return d
sw, ka = kv(sys.argv[1]), kv(sys.argv[2])
# the highest rate both passed in the sweep: CPU per call at the same load
sweeps = {}
for line in open(sys.argv[3]):
    if line.startswith("sweep: "):
        t = line.split()
        d = kv(line)
        sweeps.setdefault(t[1], {})[int(d["rate"])] = d
common = min(int(sw["rate"]), int(ka["rate"]))
print(f"RESULT {ref:<9} max_passing_rate={ka['rate']} {unit}_per_s={ka['calls_per_s']} cpu_ms_per_{one}={ka['cpu_ms_per_call']} proxy_cpu_pct={ka['proxy_cpu_pct']} p95_ms={ka['p95_ms']} fail_pct={ka['fail_pct']}")
print(f"RESULT sipwarden max_passing_rate={sw['rate']} {unit}_per_s={sw['calls_per_s']} cpu_ms_per_{one}={sw['cpu_ms_per_call']} proxy_cpu_pct={sw['proxy_cpu_pct']} p95_ms={sw['p95_ms']} fail_pct={sw['fail_pct']}")
print(f"RATIO sipwarden/{ref} max_passing_rate={float(sw['rate']) / float(ka['rate']):.2f} "
      f"{unit}_per_s={float(sw['calls_per_s']) / float(ka['calls_per_s']):.2f} "
      f"cpu_per_{one}_at_own_max={float(sw['cpu_ms_per_call']) / float(ka['cpu_ms_per_call']):.2f}")
a, b = sweeps.get("sipwarden", {}).get(common), sweeps.get(ref, {}).get(common)
if a and b:
    print(f"RATIO sipwarden/{ref} cpu_per_{one}_at_{common}_per_s={float(a['cpu_ms_per_call']) / float(b['cpu_ms_per_call']):.2f} "
          f"(sipwarden {a['cpu_ms_per_call']} ms, {ref} {b['cpu_ms_per_call']} ms; one sweep run each)")
PY
fi

if [[ $PROFILE == 1 && $KIND == calls && -n ${BEST[sipwarden]:-} ]] && command -v perf >/dev/null; then
	r=${BEST[sipwarden]}
	tag="sipwarden.r$r.perf"
	log "profile: sipwarden at $r calls/s under perf record (not counted)"
	wait_ports_free; wait_quiet
	start_proxy sipwarden "$tag"
	start_uas "$tag" $((r * RUN_SECS))
	swpid=$(descendants "$PROXY_PID" | head -1)
	timeout -k 5 $((RUN_SECS + 10)) perf record -F 499 -p "$swpid" -o "$OUT_DIR/$tag.data" -- sleep $((RUN_SECS - 2)) \
		>"$OUT_DIR/$tag.perf.log" 2>&1 &
	perfpid=$!
	remember "$perfpid"
	(cd "$OUT_DIR" && timeout -k 5 $((RUN_SECS + 45)) sipp $IP:"$PROXY_PORT" -sf "$SCN/uac_invite.xml" \
		-i $TRUNK_IP -p "$TRUNK_PORT" -t u1 -nostdin -s "$DID" -d "$HOLD_MS" -r "$r" -rp 1000 -m $((r * RUN_SECS)) \
		-l $((r * 2 + 100)) -buff_size 4194304 -recv_timeout 5000 -timeout $((RUN_SECS + 30))s \
		>"$OUT_DIR/$tag.sipp.out" 2>&1)
	wait "$perfpid"
	stop_tree "$UAS_PID"; stop_tree "$PROXY_PID"
	perf report -i "$OUT_DIR/$tag.data" --stdio --no-children --sort dso,symbol --percent-limit 1 \
		>"$OUT_DIR/$tag.report.txt" 2>/dev/null
	say "PROFILE $OUT_DIR/$tag.report.txt (top symbols, self time):"
	grep -E '^ +[0-9]' "$OUT_DIR/$tag.report.txt" | head -25 | tee -a "$SUMMARY"
fi
say "# finished $(date -Is), $((SECONDS - T_START)) s, loadavg=[$(cut -d' ' -f1-3 /proc/loadavg)]"
log "outputs in $OUT_DIR (summary: $SUMMARY)"
