#!/usr/bin/env bash
# The load generator's own ceiling for KIND=register: the same SIPp client(s) as bench/run.py,
# against a SIPp responder that only answers 401 and 200 (scenarios/reg_responder.xml), on
# 127.0.0.1:5060. What fails here fails for any proxy on this machine.
#
#   bench/ceiling.sh RATE [CLIENTS] [SECS]      e.g. bench/ceiling.sh 22500 1; bench/ceiling.sh 22500 2
#
# Loopback only; every SIPp is bounded by -m, -timeout and timeout(1); only the PIDs started
# here are stopped. Prints one summary line per client (parse_sipp.py).
set -euo pipefail
rate=${1:?rate}; n=${2:-1}; secs=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
if ss -Hlun 'sport = :5060' | grep -q 127.0.0.1; then
    echo "127.0.0.1:5060 is busy (a proxy or an earlier responder); stop it first" >&2
    exit 1
fi
out=$(mktemp -d /tmp/sipwarden-ceiling.XXXXXX)
timeout -k 5 $((secs + 60)) sipp -sf "$here/scenarios/reg_responder.xml" -i 127.0.0.1 -p 5060 -t u1 \
    -nostdin -buff_size 4194304 > "$out/responder.out" 2>&1 &
responder=$!
# Stopped by its PID, and waited for, so that the port is free when this script returns.
trap 'kill "$responder" 2>/dev/null || true; wait "$responder" 2>/dev/null || true' EXIT
# Ready when the port is bound (bounded poll).
for _ in $(seq 1 100); do ss -Hlun 'sport = :5060' | grep -q 127.0.0.1 && break; sleep 0.05; done
pids=()
for i in $(seq 1 "$n"); do
    share=$((rate / n + (i <= rate % n ? 1 : 0)))
    mkdir -p "$out/c$i"
    (cd "$out/c$i" && timeout -k 5 $((secs + 45)) sipp 127.0.0.1:5060 -sf "$here/scenarios/reg_auth.xml" \
        -i 127.0.0.2 -p $((5062 + 2 * (i - 1))) -s bench -au bench -ap benchpass -t u1 -nostdin \
        -r "$share" -rp 1000 -m $((share * secs)) -l $((share * 2 + 100)) -buff_size 4194304 \
        -recv_timeout 5000 -timeout $((secs + 30))s -trace_stat -stf stat.csv -fd 1 \
        -trace_rtt -rtt_freq 1 > sipp.out 2>&1 || true) &
    pids+=($!)
done
wait "${pids[@]}"
for i in $(seq 1 "$n"); do
    echo "client $i: $(python3 "$here/parse_sipp.py" "$out/c$i/stat.csv" "$(ls "$out/c$i"/*_rtt.csv | head -1)")"
done
echo "files: $out"
