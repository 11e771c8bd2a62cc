#!/usr/bin/env python3
"""Calls through the gateway vs Kamailio: one command, same SIPp scenario, same
machine, loopback only (the lab of LAB.md). The harness of bench/run.sh as a
program (Python 3.11, standard library only): the same knobs, runs, figures and
output lines, with each proxy's configuration rendered from a template in
bench/templates/ (string.Template) instead of the lab config edited by regular
expressions. bench/run.sh is kept for comparison.

  bench/run.py                      # both proxies, full sweep (about 12-20 min)
  PROXIES=sipwarden bench/run.py    # one of them only
  KIND=register bench/run.py        # REGISTER with digest auth instead of calls
  KIND=flood bench/run.py           # REGISTER flood from a banned source + calls

Call flow, for both proxies, UDP:
  SIPp UAC "trunk" 127.0.0.3:5060 --INVITE sip:+15551230042@127.0.0.1:5060-->
  proxy 127.0.0.1:5060 --> SIPp UAS "PBX" 127.0.0.10:5080
  INVITE -> 100/180 -> 200 -> ACK -> (pause HOLD_MS) -> BYE -> 200
The same two scenario files (scenarios/uac_invite.xml, scenarios/uas_rr.xml)
drive both proxies unchanged.

For every proxy it sweeps CALL_RATES upward (interleaved: each rate runs
Kamailio, then sipwarden, back to back) until a rate fails the criteria
  fail < MAX_FAIL_PCT %, p95 (INVITE->200, SIPp RTD 1) <= MAX_P95_MS,
  achieved >= 95 % of offered
(the criteria of ../shared/bench/kamailio, the Kamailio reference). A proxy
that passes every CALL_RATES step continues with EXTRA_RATES. The best passing
rate of each proxy is then run again until REPEATS runs exist, and the median
is printed ("FINAL"), followed by the sipwarden/Kamailio ratios.

CPU: utime+stime of the proxy's whole process tree from /proc/PID/stat over
the SIPp client's wall time, like the reference; CPU per call = that CPU
divided by the calls completed.

Each run starts a fresh proxy (sipwarden: a fresh scratch directory with a copy
of examples/; after the run its logs keep their last LOG_KEEP bytes, since at
20,000 registrations/s the security and event logs grow by 35 MB a second) and
a fresh UAS, and stops only the PIDs it started (never
pkill/killall). Every SIPp run is bounded by -m, -timeout, timeout(1) and a
subprocess timeout. Before each run it waits (bounded) until the lab ports are
free and the machine is idle.

KIND=register and KIND=flood are described in bench/README.md.

Environment (defaults in brackets); every knob is also a flag (--run-secs 3 for
RUN_SECS=3), but the environment wins when both are given:
  KIND [calls]   calls | register | flood
  FLOOD_RATE [20000]  flood datagrams/s offered (KIND=flood); with
                  FLOODER=blast, "max" = as fast as the blaster can send
  FLOOD_SECS [20]  LEGIT_RATE [100] (trunk calls/s during the flood; 0: none)
  FLOODER [sipp]  sipp | blast    FLOOD_PORT [5090] (on 127.0.0.66)
  PROXIES ["kamailio sipwarden"]   which proxies, in the order run per step
  CALL_RATES ["500 1000 1500 2000 2500 3000 4000 5000"]   calls/s sweep
  REG_RATES ["2000 4000 6000 8000 10000 12000 14000 16000"]   registrations/s
             sweep (KIND=register; EXTRA_RATES then default to
             "18000 20000 24000 28000 32000")
  EXTRA_RATES ["6000 7000 8000 10000"]  only for a proxy that passed all CALL_RATES
             (set and empty: none)
  RUN_SECS [15]  REPEATS [3]  HOLD_MS [0]  MAX_FAIL_PCT [1]  MAX_P95_MS [50]
  CHILDREN [2]  Kamailio UDP workers (the reference's main figure)
  KAM_MAXBUFFER   unset: Kamailio's default UDP receive-buffer probing. Set:
                  maxbuffer=N in the rendered kamailio.cfg -- a diagnostic
  DID [+15551230042]  called number (a DID of the lab trunk "carrier"; +12125550100
                  with DIRECTION=outbound)
  DIRECTION [inbound]  inbound: the trunk calls the PBX (the comparison with Kamailio);
                  outbound: the PBX (SIPp UAC on 127.0.0.10:PBX_PORT) calls out through the
                  trunk (SIPp UAS on 127.0.0.3:TRUNK_PORT), where the toll-fraud policy
                  applies -- sipwarden and baseline only
  BASELINE_BIN    the baseline's binary (instead of building BASELINE_REV): with
                  BASELINE_TEMPLATE, the same build under another configuration
  PROXY_PORT [5060] PBX_PORT [5080] TRUNK_PORT [5060] ADMIN_PORT [8080] REG_PORT [5062]
  UACS [1]   KIND=register: SIPp clients sharing the rate, side by side, on
             127.0.0.2 ports REG_PORT, REG_PORT+2, ... (one SIPp is one thread;
             bench/ceiling.sh shows when one client is the limit)
  SIPWARDEN_BIN   use this binary instead of building
  BASELINE_REV    a second sipwarden, built from this git revision (clean
                  snapshot), run as proxy "baseline" beside "sipwarden". PROXIES
                  then defaults to "baseline sipwarden" and the ratios printed
                  are sipwarden/baseline
  SIPWARDEN_REV   build this git revision (e.g. HEAD) from a clean snapshot in
                  BUILD_DIR [/tmp/sipwarden-bench-build] (target dir per revision)
                  instead of `cargo build --release -p sipwarden` in the working tree
  SIPWARDEN_LOG [warn]   sipwarden's log filter (stderr goes to the run's log)
  SW_MAX_TRANSACTIONS    set: [transactions] max_transactions = N in sipwarden's
                  bench config -- a diagnostic, NOT the comparison
  SW_TEMPLATE, BASELINE_TEMPLATE [bench/templates/sipwarden.toml.tmpl]
                  the template of sipwarden's (the baseline's) bench config
  OUT_DIR [/tmp/sipwarden-bench.<time>]  logs, CSVs, metrics, summary.txt
  QUIET_PCT [10] QUIET_MAX_WAIT [60]  wait (bounded) for an idle machine
  PORT_WAIT [300]  seconds to wait for busy lab ports before giving up
  BENCH_NICE [0]   nice value for every process started (same for both)
  PROFILE [0]      1: after the sweeps, one extra sipwarden run at its best
                   rate under `perf record` (not counted in the figures)
"""
import argparse
import atexit
import datetime
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import time
import tomllib
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SCN = os.path.join(HERE, "scenarios")
TEMPLATES = os.path.join(HERE, "templates")
sys.path.insert(0, HERE)
import parse_sipp  # noqa: E402

IP = "127.0.0.1"          # the proxy: loopback only, on purpose
PBX_IP = "127.0.0.10"     # the lab's PBX (LAB.md): not 127.0.0.1, where local clients are phones
TRUNK_IP = "127.0.0.3"    # the lab's carrier
REG_IP = "127.0.0.2"      # the lab's phones
FLOOD_IP = "127.0.0.66"   # the lab's attackers: never allow-listed
AUTH_USER = "bench"
AUTH_PASS = "benchpass"
REALM = "sipwarden.lab"


# ------------------------------------------------------------ templates ----
class BracedTemplate(string.Template):
    """string.Template that knows only ${name}. Kamailio's own $var, $avp(x),
    $sht(...) and a lone $ pass through untouched, so one syntax serves every
    template (TOML, Kamailio cfg, address file)."""
    pattern = r"""
    \$(?:
      (?P<escaped>(?!))                    |  # no escape: $$ stays $$
      (?P<named>(?!))                      |  # $name is not ours
      \{(?P<braced>[_a-z][_a-z0-9]*)\}     |  # ${name}
      (?P<invalid>(?!))
    )
    """


def render(template_text, values):
    """Fill every ${name}; a missing value is an error (KeyError)."""
    return BracedTemplate(template_text).substitute(values)


def template_names(template_text):
    return set(BracedTemplate(template_text).get_identifiers())


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def sipwarden_values(ip, proxy_port, pbx_ip, pbx_port, trunk_ip, trunk_port, admin_port, reg_ip,
                     max_transactions=None):
    diag = ""
    if max_transactions is not None:
        diag = ("\n# bench diagnostic (SW_MAX_TRANSACTIONS), not the lab value\n"
                f"[transactions]\nmax_transactions = {max_transactions}\n")
    return {"ip": ip, "proxy_port": proxy_port, "pbx_ip": pbx_ip, "pbx_port": pbx_port,
            "trunk_ip": trunk_ip, "trunk_port": trunk_port, "admin_port": admin_port,
            "reg_ip": reg_ip, "diagnostics": diag}


def accounts_values(user, password, realm=REALM):
    a1 = f"{user}:{realm}:{password}".encode()
    return {"realm": realm, "user": user, "ha1_md5": hashlib.md5(a1).hexdigest(),
            "ha1_sha256": hashlib.sha256(a1).hexdigest()}


def kamailio_values(ip, proxy_port, pbx_ip, pbx_port, addrfile, ctl, children, maxbuffer=None):
    mb = f"\nmaxbuffer={maxbuffer}   # bench diagnostic (KAM_MAXBUFFER)" if maxbuffer is not None else ""
    return {"ip": ip, "proxy_port": proxy_port, "pbx_ip": pbx_ip, "pbx_port": pbx_port,
            "addrfile": addrfile, "ctl": ctl, "children": children, "maxbuffer": mb}


def address_values(trunk_ip, trunk_port, pbx_ip, pbx_port, reg_ip, reg_port):
    return {"trunk_ip": trunk_ip, "trunk_port": trunk_port, "pbx_ip": pbx_ip, "pbx_port": pbx_port,
            "reg_ip": reg_ip, "reg_port": reg_port}


def bench_view_of_lab(lab, v):
    """examples/lab.toml (parsed) with what the bench changes applied: what the rendered
    template must parse to when the template and the lab have not drifted apart."""
    import copy
    d = copy.deepcopy(lab)
    listen = d.setdefault("listen", {})
    listen["udp"] = [f"{v['ip']}:{v['proxy_port']}"]
    listen["tcp"] = [f"{v['ip']}:{v['proxy_port']}"]
    listen.pop("tls", None)
    listen.pop("wss", None)
    pbx = d.setdefault("pbx", {})
    pbx["address"] = f"{v['pbx_ip']}:{v['pbx_port']}"
    pbx["networks"] = [f"{v['pbx_ip']}/32"]
    for t in d.get("trunk", []):
        t["networks"] = [f"{v['trunk_ip']}/32"]
        t["proxy"] = f"sip:{v['trunk_ip']}:{v['trunk_port']}"
    d.setdefault("accounts", {})["file"] = "examples/bench-accounts.toml"
    d.setdefault("ban", {})["allow"] = [f"{v['reg_ip']}/32"]
    d.setdefault("admin", {})["listen"] = f"{v['ip']}:{v['admin_port']}"
    # Signalling only: Kamailio's reference anchors no media, and the SIPp calls send none.
    d.pop("media", None)
    # The carrier's limits (100 calls a second) would cap the throughput being measured; the
    # policy benchmark sets its own.
    d.get("policy", {}).pop("limits", None)
    return d


def toml_diff(a, b, prefix=""):
    """Dotted keys whose values differ between two parsed TOML documents (a: the rendered
    template, b: the lab's view)."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            key = f"{prefix}{k}"
            if k not in a:
                out.append(f"{key} (only in the lab)")
            elif k not in b:
                out.append(f"{key} (only in the template)")
            else:
                out += toml_diff(a[k], b[k], key + ".")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
            all(isinstance(x, dict) for x in a + b):
        for i, (x, y) in enumerate(zip(a, b)):
            out += toml_diff(x, y, f"{prefix}{i}.")
    elif a != b:
        out.append(prefix.rstrip("."))
    return out


def flooder_listed(toml_text, flood_ip):
    """Does any network in the config contain the flooder's address?"""
    ip = ipaddress.ip_address(flood_ip)
    nets = re.findall(r'"(\d+\.\d+\.\d+\.\d+/\d+)"', toml_text)
    return any(ip in ipaddress.ip_network(n, strict=False) for n in nets)


# ------------------------------------------------------- pass criteria ------
def kv(line):
    return dict(t.split("=", 1) for t in line.split() if "=" in t)


def passes(line, rate, max_fail, max_p95):
    d = kv(line)
    try:
        done = d["calls_per_s"] if "calls_per_s" in d else d["regs_per_s"]
        return (float(d["fail_pct"]) < float(max_fail) and float(d["p95_ms"]) <= float(max_p95)
                and float(done) >= 0.95 * float(rate) and d.get("foreign", "none") == "none")
    except (KeyError, ValueError):
        return False


def ratio_lines(final_sw, final_ref, sweeps, unit, ref):
    """The RESULT and RATIO lines of a sweep (run.sh's last heredoc). sweeps: proxy ->
    {rate: kv of its sweep line}."""
    one = unit[:-1]

    def spell(d):
        d = dict(d)
        for a, b in ((f"{unit}_per_s", "calls_per_s"), (f"cpu_ms_per_{one}", "cpu_ms_per_call")):
            if a in d:
                d[b] = d[a]
        return d
    sw, ka = spell(kv(final_sw)), spell(kv(final_ref))
    common = min(int(sw["rate"]), int(ka["rate"]))
    out = [
        f"RESULT {ref:<9} max_passing_rate={ka['rate']} {unit}_per_s={ka['calls_per_s']} cpu_ms_per_{one}={ka['cpu_ms_per_call']} proxy_cpu_pct={ka['proxy_cpu_pct']} p95_ms={ka['p95_ms']} fail_pct={ka['fail_pct']}",
        f"RESULT sipwarden max_passing_rate={sw['rate']} {unit}_per_s={sw['calls_per_s']} cpu_ms_per_{one}={sw['cpu_ms_per_call']} proxy_cpu_pct={sw['proxy_cpu_pct']} p95_ms={sw['p95_ms']} fail_pct={sw['fail_pct']}",
        f"RATIO sipwarden/{ref} max_passing_rate={float(sw['rate']) / float(ka['rate']):.2f} "
        f"{unit}_per_s={float(sw['calls_per_s']) / float(ka['calls_per_s']):.2f} "
        f"cpu_per_{one}_at_own_max={float(sw['cpu_ms_per_call']) / float(ka['cpu_ms_per_call']):.2f}",
    ]
    a = sweeps.get("sipwarden", {}).get(common)
    b = sweeps.get(ref, {}).get(common)
    if a and b:
        a, b = spell(a), spell(b)
        out.append(f"RATIO sipwarden/{ref} cpu_per_{one}_at_{common}_per_s={float(a['cpu_ms_per_call']) / float(b['cpu_ms_per_call']):.2f} "
                   f"(sipwarden {a['cpu_ms_per_call']} ms, {ref} {b['cpu_ms_per_call']} ms; one sweep run each)")
    return out


def flood_ratio_line(final_sw, final_ref, ref):
    sw, ka = kv(final_sw), kv(final_ref)

    def r(k):
        try:
            return f"{float(sw[k]) / float(ka[k]):.2f}"
        except (KeyError, ValueError, ZeroDivisionError):
            return "nan"
    return (f"RATIO sipwarden/{ref} absorbed_per_s={r('absorbed_per_s')} (sipwarden {sw.get('absorbed_per_s')}, {ref} {ka.get('absorbed_per_s')}) "
            f"proxy_cpu_pct={r('proxy_cpu_pct')} (sipwarden {sw.get('proxy_cpu_pct')}, {ref} {ka.get('proxy_cpu_pct')}) "
            f"cpu_us_per_msg={r('cpu_us_per_msg')} sock_drops sipwarden {sw.get('sock_drops')} {ref} {ka.get('sock_drops')}")


def awk_num(x):
    """A number as awk prints it with %s (integers plain, others %.6g)."""
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


LOG_KEEP = 1 << 20


def trim_logs(scratch, keep=LOG_KEEP):
    """Cuts every log of a sipwarden scratch directory (lab-data/*.log, *.jsonl) to its last
    `keep` bytes, from a line start. Returns {name: bytes before} of the files cut."""
    cut = {}
    data = os.path.join(scratch, "lab-data")
    if not os.path.isdir(data):
        return cut
    for fn in sorted(os.listdir(data)):
        path = os.path.join(data, fn)
        if not (fn.endswith(".log") or fn.endswith(".jsonl")) or not os.path.isfile(path):
            continue
        size = os.path.getsize(path)
        if size <= keep:
            continue
        with open(path, "rb") as f:
            f.seek(size - keep)
            tail = f.read()
        nl = tail.find(b"\n")
        tail = tail[nl + 1:] if nl >= 0 else tail
        with open(path, "wb") as f:
            f.write(tail)
        cut[fn] = size
    return cut


def split_rate(rate, n):
    """rate/s shared by n clients, whole numbers that add up to rate (the first ones take the
    remainder)."""
    n = max(1, n)
    return [rate // n + (1 if k < rate % n else 0) for k in range(n)]


def calls_line(name, kind, unit, rate, stats, ustats, proxy_ticks, uas_ticks, wall, hz, psi0, psi1,
               ccpu, proxy_drops, rcvbuf, uas_drops, n503, swstate, quiet, load1, foreign, tag):
    """One run's line (run.sh's calls_run heredoc)."""
    d = kv(stats) if stats else {}
    u = kv(ustats) if ustats else {}
    wall = float(wall) or float("nan")
    created = float(d.get("created", 0))
    ok = float(d.get("ok", 0))
    fail = 100 * (created - ok) / created if created else 100.0
    pcpu = int(proxy_ticks) / int(hz)
    out = [name, kind, f"rate={rate}", f"{unit}_per_s={d.get('ok_per_s', '0')}", f"fail_pct={fail:.2f}"]
    for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
        out.append(f"{k}={d.get(k, 'nan')}")
    out += [f"ok={d.get('ok', 0)}", f"created={d.get('created', 0)}", f"uac_retrans={d.get('retrans', 'nan')}",
            f"uas_retrans={u.get('retrans', 'nan')}", f"uas_calls={u.get('created', 'nan')}",
            f"proxy_cpu_pct={100 * pcpu / wall:.1f}",
            f"cpu_ms_per_{unit[:-1]}={1000 * pcpu / ok if ok else float('nan'):.3f}",
            f"uas_cpu_pct={100 * int(uas_ticks) / int(hz) / wall:.1f}", f"uac_cpu_pct={ccpu}",
            f"proxy_sock_drops={proxy_drops}", f"proxy_rcvbuf={rcvbuf or 'nan'}", f"uas_sock_drops={uas_drops}",
            f"cpu_pressure_pct={100 * (int(psi1) - int(psi0)) / (wall * 1e6):.1f}",
            f"uac_got_503={n503}"] + (swstate.split() if swstate != "-" else []) + [
            f"prerun_busy_pct={quiet}", f"load1={load1}", f"foreign={foreign or 'none'}", f"run={tag}"]
    return " ".join(out)


def flood_line(name, flooder, flood_rate, legit_rate, fstats, lstats, proxy_ticks, hz, psi0, psi1, drops,
               udrops, r0, r1, rss0, rss1, rss2, sw, time_text, n503, banned, rcvbuf, quiet, load1,
               foreign, tag):
    """One flood run's line (run.sh's flood_run heredoc)."""
    f = kv(fstats) if fstats != "-" else {}
    t = [ln for ln in time_text.split("\n") if ln.strip()]
    tu, ts, te = (float(x) for x in t[-1].split()) if t else (0.0, 0.0, 0.0)
    if flooder == "blast":
        sent = int(f.get("sent", 0))
        wall = float(f.get("span_s", 0)) or float("nan")
        replies = int(f.get("replies", 0))
        tail = int(f.get("replies_last5s", -1))
        extra = [f"first_reply_ms={f.get('first_reply_ms', 'nan')}", f"last_reply_ms={f.get('last_reply_ms', 'nan')}",
                 f"send_errors={f.get('send_errors', 'nan')}"]
    else:
        sent = int(f.get("created", 0))
        wall = te or float("nan")
        replies = int(f.get("dead_msgs", 0)) + int(f.get("ooc_msgs", 0))
        series = [int(x) for x in f.get("stray_replies_series", "").split(",") if x]
        tail = sum(series[-5:]) if series else -1
        extra = []
    drops = int(drops)
    pcpu = int(proxy_ticks) / int(hz)
    out = [name, "flood", f"flooder={flooder}", f"offered={flood_rate}", f"sent_per_s={sent / wall:.0f}", f"sent={sent}",
           f"wall_s={wall:.2f}", f"sock_drops={drops}", f"absorbed_per_s={(sent - drops) / wall:.0f}"]
    if r0 and r1:
        out.append(f"proxy_read_per_s={(int(r1) - int(r0)) / wall:.0f}")
    elif "sw_udp_read=" in sw:
        out.append(f"proxy_read_per_s={int(sw.split('sw_udp_read=')[1].split()[0]) / wall:.0f}")
    out += [f"replies={replies}", f"replies_last5s={tail}",
            f"cut_off={'yes' if tail == 0 and 0 < sent and replies < sent else 'no'}",
            f"banned={banned}", f"proxy_cpu_pct={100 * pcpu / wall:.1f}",
            f"cpu_us_per_msg={1e6 * pcpu / (sent - drops) if sent > drops else float('nan'):.2f}",
            f"flooder_cpu_pct={100 * (tu + ts) / te if te else 0:.1f}"] + extra
    if lstats != "-":
        ld = kv(lstats)
        c, ok = float(ld.get("created", 0)), float(ld.get("ok", 0))
        out += [f"legit_rate={legit_rate}", f"legit_ok={ld.get('ok', 0)}", f"legit_created={ld.get('created', 0)}",
                f"legit_fail_pct={100 * (c - ok) / c if c else 100:.2f}"]
        out += [f"legit_{k}={ld.get(k, 'nan')}" for k in ("mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")]
        out += [f"legit_retrans={ld.get('retrans', 'nan')}", f"legit_503={n503}", f"uas_sock_drops={udrops}"]
    out += [f"proxy_rcvbuf={rcvbuf or 'nan'}", f"proxy_rss_mb_start={int(rss0) / 1024:.1f}",
            f"proxy_rss_mb_end={int(rss1) / 1024:.1f}", f"proxy_rss_mb_after={int(rss2) / 1024:.1f}",
            f"cpu_pressure_pct={100 * (int(psi1) - int(psi0)) / (wall * 1e6):.1f}"]
    if sw != "-":
        out += sw.split()
    out += [f"prerun_busy_pct={quiet}", f"load1={load1}", f"foreign={foreign or 'none'}", f"run={tag}"]
    return " ".join(out)


def metrics_state(text):
    """sw_calls_left, sw_txns_held, sw_inbound_dropped from a /metrics snapshot (run.sh's awk)."""
    c = tc = ts = d = ""
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if line.startswith("sipwarden_calls "):
            c = f[1] if len(f) > 1 else ""
        elif line.startswith("sipwarden_transactions_client "):
            tc = f[1] if len(f) > 1 else ""
        elif line.startswith("sipwarden_transactions_server "):
            ts = f[1] if len(f) > 1 else ""
        elif line.startswith("sipwarden_inbound_dropped_total "):
            d = f[1] if len(f) > 1 else ""

    def num(x):
        try:
            return float(x)
        except ValueError:
            return 0.0
    return f"sw_calls_left={c} sw_txns_held={awk_num(num(tc) + num(ts))} sw_inbound_dropped={d}"


def metric(text, name):
    """The value of one metric (0 when absent), as awk '$1 == n {v = $2} END {print v + 0}'."""
    v = 0.0
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] == name:
            try:
                v = float(f[1])
            except ValueError:
                v = 0.0
    return int(v) if v.is_integer() else v


# =========================================================== the harness ====
class Abort(Exception):
    """A run that cannot go on (run.sh: `exit 1` inside the run's subshell)."""


class Harness:
    def __init__(self, env):
        self.env = env
        self.t_start = time.monotonic()
        self.started = {}   # pid -> (starttime, Popen)
        self.hz = os.sysconf("SC_CLK_TCK")
        self.ncpu = os.cpu_count() or 1
        self.quiet = 0
        self.kam_note = ""
        self.sw_version = "n/a"
        self.bl_version = "n/a"
        self.notes = []
        self.configure()

    # ------------------------------------------------------------ knobs --
    def configure(self):
        e = self.env

        def get(name, default):    # ${NAME:-default}
            v = e.get(name, "")
            return v if v != "" else default

        self.kind = get("KIND", "calls")
        self.baseline_rev = e.get("BASELINE_REV", "")
        self.baseline_bin = e.get("BASELINE_BIN", "")
        self.proxies_raw = get("PROXIES", "baseline sipwarden" if self.baseline_rev or self.baseline_bin
                               else "kamailio sipwarden")
        self.direction = get("DIRECTION", "inbound")
        if self.kind == "register":
            self.rates_raw = get("REG_RATES", "2000 4000 6000 8000 10000 12000 14000 16000")
            self.extra_raw = e.get("EXTRA_RATES", "18000 20000 24000 28000 32000")   # ${EXTRA_RATES-...}
        else:
            self.rates_raw = get("CALL_RATES", "500 1000 1500 2000 2500 3000 4000 5000")
            self.extra_raw = e.get("EXTRA_RATES", "6000 7000 8000 10000")
        self.flood_port = get("FLOOD_PORT", "5090")
        self.flood_rate = get("FLOOD_RATE", "20000")
        self.flood_secs = get("FLOOD_SECS", "20")
        self.legit_rate = get("LEGIT_RATE", "100")
        self.flooder = get("FLOODER", "sipp")
        self.reg_port = get("REG_PORT", "5062")
        self.uacs = get("UACS", "1")
        self.run_secs = get("RUN_SECS", "15")
        self.repeats = get("REPEATS", "3")
        self.hold_ms = get("HOLD_MS", "0")
        self.max_fail_pct = get("MAX_FAIL_PCT", "1")
        self.max_p95_ms = get("MAX_P95_MS", "50")
        self.children = get("CHILDREN", "2")
        self.did = get("DID", "+12125550100" if self.direction == "outbound" else "+15551230042")
        self.proxy_port = get("PROXY_PORT", "5060")
        self.pbx_port = get("PBX_PORT", "5080")
        self.trunk_port = get("TRUNK_PORT", "5060")
        self.admin_port = get("ADMIN_PORT", "8080")
        self.build_dir = get("BUILD_DIR", "/tmp/sipwarden-bench-build")
        self.sipwarden_log = get("SIPWARDEN_LOG", "warn")
        self.out_dir = get("OUT_DIR", "/tmp/sipwarden-bench." + time.strftime("%Y%m%d-%H%M%S"))
        self.quiet_pct = get("QUIET_PCT", "10")
        self.quiet_max_wait = get("QUIET_MAX_WAIT", "60")
        self.port_wait = get("PORT_WAIT", "300")
        self.bench_nice = get("BENCH_NICE", "0")
        self.profile = get("PROFILE", "0")
        self.sipwarden_bin = e.get("SIPWARDEN_BIN", "")
        self.sipwarden_rev = e.get("SIPWARDEN_REV", "")
        self.kam_maxbuffer = e.get("KAM_MAXBUFFER", "")
        self.sw_max_transactions = e.get("SW_MAX_TRANSACTIONS", "")
        self.sw_template = get("SW_TEMPLATE", os.path.join(TEMPLATES, "sipwarden.toml.tmpl"))
        self.bl_template = get("BASELINE_TEMPLATE", os.path.join(TEMPLATES, "sipwarden.toml.tmpl"))

        def die(msg):
            print(msg, file=sys.stderr)
            sys.exit(2)
        num = re.compile(r"^[0-9]+$")
        for p in (self.proxy_port, self.pbx_port, self.trunk_port, self.admin_port, self.run_secs,
                  self.repeats, self.children, self.hold_ms):
            if not num.match(p):
                die(f"not a number: {p}")
        self.rates = self.rates_raw.split()
        self.extra = self.extra_raw.split()
        for r in self.rates + self.extra:
            if not num.match(r):
                die(f"bad rate {r}")
        self.proxies = self.proxies_raw.split()
        for p in self.proxies:
            if p not in ("kamailio", "sipwarden", "baseline"):
                die(f"unknown proxy {p}")
        if "baseline" in self.proxies and not (self.baseline_rev or self.baseline_bin):
            die("proxy baseline needs BASELINE_REV or BASELINE_BIN")
        if self.direction not in ("inbound", "outbound"):
            die("DIRECTION must be inbound or outbound")
        if self.direction == "outbound" and ("kamailio" in self.proxies or self.kind != "calls"):
            die("DIRECTION=outbound: KIND=calls, sipwarden and baseline only (Kamailio's reference "
                "config routes trunk calls to the PBX)")
        # Who answers and who calls: the PBX and the trunk change places outbound.
        if self.direction == "outbound":
            self.uas_at, self.uac_at = (TRUNK_IP, self.trunk_port), (PBX_IP, self.pbx_port)
        else:
            self.uas_at, self.uac_at = (PBX_IP, self.pbx_port), (TRUNK_IP, self.trunk_port)
        if self.kind not in ("calls", "register", "flood"):
            die("KIND must be calls, register or flood")
        if self.kind == "flood":
            for p in (self.flood_port, self.flood_secs, self.legit_rate):
                if not num.match(p):
                    die(f"not a number: {p}")
            if self.flooder not in ("sipp", "blast"):
                die("FLOODER must be sipp or blast")
            if not ((num.match(self.flood_rate) and int(self.flood_rate) > 0)
                    or (self.flooder == "blast" and self.flood_rate == "max")):
                die("FLOOD_RATE must be a number (or max with FLOODER=blast)")
            if not 6 <= int(self.flood_secs) <= 120:
                die("FLOOD_SECS must be 6..120")
        if not (num.match(self.uacs) and 1 <= int(self.uacs) <= 8):
            die("UACS must be 1..8")
        if int(self.uacs) > 1 and self.kind != "register":
            die("UACS applies to KIND=register only")
        if self.kam_maxbuffer and not num.match(self.kam_maxbuffer):
            die("bad KAM_MAXBUFFER")
        if self.sw_max_transactions and not num.match(self.sw_max_transactions):
            die("bad SW_MAX_TRANSACTIONS")
        self.unit = "regs" if self.kind == "register" else "calls"
        self.nice = ["nice", "-n", self.bench_nice]
        os.makedirs(self.out_dir, exist_ok=True)
        self.summary = os.path.join(self.out_dir, "summary.txt")
        self.sw_bin = os.path.join(self.out_dir, "sipwarden")
        self.sw_examples = os.path.join(self.out_dir, "examples.src")
        self.bl_bin = os.path.join(self.out_dir, "baseline")
        self.bl_examples = os.path.join(self.out_dir, "baseline-examples.src")
        self.kamcmd = (["kamcmd", "-s", f"unix:{self.out_dir}/kamailio_ctl"]
                       if shutil.which("kamcmd") else None)

    # ----------------------------------------------------------- output --
    @staticmethod
    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def say(self, line):
        print(line, flush=True)
        with open(self.summary, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    # ---------------------------------------------------------- install --
    def ensure_tools(self):
        pkgs = []
        if not shutil.which("sipp"):
            pkgs.append("sip-tester")
        if not os.access("/usr/bin/time", os.X_OK):
            pkgs.append("time")
        if not shutil.which("timeout"):
            pkgs.append("coreutils")
        if not shutil.which("ss"):
            pkgs.append("iproute2")
        if self.kind == "flood" and self.flooder == "blast" and not shutil.which("gcc"):
            pkgs += ["gcc", "libc6-dev"]
        if "kamailio" in self.proxies and not shutil.which("kamailio"):
            pkgs += ["kamailio", "kamailio-extra-modules"]
        if pkgs:
            self.log(f"installing: {' '.join(pkgs)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            if subprocess.run(["apt-get", "install", "-y", "-q", *pkgs], env=env,
                              stdout=subprocess.DEVNULL).returncode != 0:
                print(f"apt-get install {' '.join(pkgs)} failed", file=sys.stderr)
                sys.exit(1)

    # ------------------------------------------------- sipwarden binary --
    def git(self, *args):
        r = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True)
        return r.returncode, r.stdout.strip()

    @staticmethod
    def cargo_env(**extra):
        """cargo's environment: ours without OUT_DIR. A build script (ring's) reruns when
        OUT_DIR changes, so an OUT_DIR given to the harness would rebuild ring and what
        depends on it in every run (about 3 minutes here) instead of reusing the build."""
        env = {k: v for k, v in os.environ.items() if k != "OUT_DIR"}
        env.update(extra)
        return env

    def prepare_sipwarden(self, sw_bin, sw_examples, bin_override, rev, template):
        """Build (or take) one sipwarden, copy it and examples/ into OUT_DIR once, and
        render its bench config from the template. Returns the version string."""
        build_log = os.path.join(self.out_dir, "build.log")
        if bin_override:
            binp, src = bin_override, REPO
            version = f"binary {binp}, examples from working tree {self.git('rev-parse', '--short', 'HEAD')[1]}"
        elif rev:
            rc, short = self.git("rev-parse", "--short", rev)
            if rc != 0:
                print(f"unknown revision {rev}", file=sys.stderr)
                sys.exit(1)
            src = os.path.join(self.build_dir, f"src-{short}")
            if not os.path.isfile(os.path.join(src, "Cargo.toml")):
                os.makedirs(src, exist_ok=True)
                arch = subprocess.Popen(["git", "-C", REPO, "archive", short], stdout=subprocess.PIPE)
                tar = subprocess.run(["tar", "-x", "-C", src], stdin=arch.stdout)
                arch.stdout.close()
                if arch.wait() != 0 or tar.returncode != 0:
                    print(f"git archive {short} failed", file=sys.stderr)
                    sys.exit(1)
            self.log(f"building sipwarden {short} (clean snapshot in {src})")
            # A target directory per revision: cargo hashes path packages relative to the
            # workspace, and git archive gives files the commit's time, so two snapshots sharing
            # one target would each take the other's newer build for fresh.
            target = os.path.join(self.build_dir, f"target-{short}")
            with open(build_log, "w") as lf:
                rc = subprocess.run(["cargo", "build", "--release", "-p", "sipwarden"], cwd=src,
                                    env=self.cargo_env(CARGO_TARGET_DIR=target),
                                    stdout=lf, stderr=subprocess.STDOUT).returncode
            if rc != 0:
                print(f"cargo build failed, see {build_log}", file=sys.stderr)
                print("\n".join(read(build_log).splitlines()[-20:]), file=sys.stderr)
                sys.exit(1)
            binp = os.path.join(target, "release", "sipwarden")
            version = f"commit {short} (clean snapshot)"
        else:
            src = REPO
            self.log(f"building sipwarden (cargo build --release -p sipwarden in {REPO})")
            with open(build_log, "w") as lf:
                rc = subprocess.run(["cargo", "build", "--release", "-p", "sipwarden"], cwd=REPO,
                                    env=self.cargo_env(), stdout=lf, stderr=subprocess.STDOUT).returncode
            if rc != 0:
                print(f"cargo build failed, see {build_log} (SIPWARDEN_REV=HEAD builds the last commit instead)",
                      file=sys.stderr)
                print("\n".join(read(build_log).splitlines()[-20:]), file=sys.stderr)
                sys.exit(1)
            binp = os.path.join(REPO, "target", "release", "sipwarden")
            dirty = "+uncommitted changes" if self.git("status", "--porcelain", "--", "crates", "Cargo.toml",
                                                       "Cargo.lock")[1] else ""
            version = f"working tree {self.git('rev-parse', '--short', 'HEAD')[1]}{dirty}"
        if not (os.path.isfile(binp) and os.access(binp, os.X_OK)):
            print(f"no sipwarden binary at {binp}", file=sys.stderr)
            sys.exit(1)
        shutil.copy2(binp, sw_bin)
        shutil.rmtree(sw_examples, ignore_errors=True)
        shutil.copytree(os.path.join(src, "examples"), sw_examples, symlinks=True)
        shutil.rmtree(os.path.join(sw_examples, "lab", "tls"), ignore_errors=True)
        try:
            os.remove(os.path.join(sw_examples, "lab", "admin.token"))
        except FileNotFoundError:
            pass
        # examples/bench.toml: rendered from the template (the lab config with the bench's
        # ports, UDP+TCP only), and the bench phone's account (user bench, password benchpass)
        values = sipwarden_values(IP, self.proxy_port, PBX_IP, self.pbx_port, TRUNK_IP, self.trunk_port,
                                  self.admin_port, REG_IP, self.sw_max_transactions or None)
        bench_toml = render(read(template), values)
        write(os.path.join(sw_examples, "bench.toml"), bench_toml)
        # The policy benchmark's rate table (templates/sipwarden-policy.toml.tmpl names it).
        shutil.copy2(os.path.join(TEMPLATES, "bench-rates.csv"), os.path.join(sw_examples, "bench-rates.csv"))
        write(os.path.join(sw_examples, "bench-accounts.toml"),
              render(read(os.path.join(TEMPLATES, "bench-accounts.toml.tmpl")),
                     accounts_values(AUTH_USER, AUTH_PASS)))
        if self.sw_max_transactions:
            version += f", max_transactions={self.sw_max_transactions} (diagnostic)"
        # KIND=flood: the flooder must be an ordinary endpoint-zone source for sipwarden
        if flooder_listed(bench_toml, FLOOD_IP):
            print(f"bench.toml trusts or allow-lists the flooder {FLOOD_IP}", file=sys.stderr)
            sys.exit(1)
        # The template follows the lab of this checkout; say so when the revision's lab differs.
        lab_path = os.path.join(sw_examples, "lab.toml")
        if os.path.isfile(lab_path):
            try:
                lab = tomllib.loads(read(lab_path))
                rendered = tomllib.loads(bench_toml)
                if self.sw_max_transactions:
                    rendered.pop("transactions", None)
                drift = toml_diff(rendered, bench_view_of_lab(lab, values))
            except tomllib.TOMLDecodeError as e:
                drift = [f"(cannot parse: {e})"]
            if drift:
                note = (f"{os.path.basename(sw_bin)}: bench config from {os.path.relpath(template, REPO)}, which "
                        f"differs from that build's examples/lab.toml in: {', '.join(drift)}")
                self.log("note: " + note)
                self.notes.append(note)
        self.check_config(sw_bin, sw_examples)
        return version

    def check_config(self, sw_bin, sw_examples):
        """`sipwarden check` on the rendered config, when the binary has it: a config this
        build cannot load stops the harness before the first run."""
        if subprocess.run([sw_bin, "check", "--help"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            return
        d = os.path.join(self.out_dir, os.path.basename(sw_bin) + ".check")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        shutil.copytree(sw_examples, os.path.join(d, "examples"), symlinks=True)
        r = subprocess.run([sw_bin, "check", "--config", "examples/bench.toml"], cwd=d,
                           capture_output=True, text=True, timeout=60)
        write(os.path.join(self.out_dir, os.path.basename(sw_bin) + ".check.txt"), r.stdout + r.stderr)
        if r.returncode == 2:
            print(f"{sw_bin} cannot load the rendered bench config ({sw_examples}/bench.toml):",
                  file=sys.stderr)
            print(r.stdout + r.stderr, file=sys.stderr)
            sys.exit(1)
        shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------- kamailio rendering --
    def render_kamailio(self):
        vals = kamailio_values(IP, self.proxy_port, PBX_IP, self.pbx_port,
                               f"{self.out_dir}/address.list", f"unix:{self.out_dir}/kamailio_ctl",
                               self.children, self.kam_maxbuffer or None)
        write(os.path.join(self.out_dir, "kamailio.cfg"),
              render(read(os.path.join(TEMPLATES, "kamailio.cfg.tmpl")), vals))
        if self.kam_maxbuffer:
            self.kam_note = f" maxbuffer={self.kam_maxbuffer} (diagnostic)"
        addr = render(read(os.path.join(TEMPLATES, "address.list.tmpl")),
                      address_values(TRUNK_IP, self.trunk_port, PBX_IP, self.pbx_port, REG_IP, self.reg_port))
        # UACS > 1: the other clients' ports are the same phone (authenticate, exempt from pike).
        for port in self.uac_ports()[1:]:
            addr += f"1 {REG_IP} 32 {port} authpeer\n"
        write(os.path.join(self.out_dir, "address.list"), addr)
        # KIND=flood: the flooder must meet pike, so it is on no allow-list line
        for line in addr.splitlines():
            f = line.split()
            if not line.startswith("#") and len(f) > 1 and f[1] == FLOOD_IP:
                print(f"address.list allow-lists the flooder {FLOOD_IP}", file=sys.stderr)
                sys.exit(1)
        os.makedirs(os.path.join(self.out_dir, "run"), exist_ok=True)

    # -------------------------------------------------- process helpers --
    # Every process is started by this program and remembered as (pid, starttime), so
    # that a recycled PID is never signalled.
    @staticmethod
    def stat_fields(pid):
        """The fields of /proc/PID/stat after "pid (comm) " (state is [0])."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:
            return None
        return s[s.rfind(") ") + 2:].split()

    def starttime(self, pid):
        f = self.stat_fields(pid)
        return f[19] if f else None

    def spawn(self, argv, out_path=None, cwd=None, env=None):
        out = open(out_path, "w") if out_path else subprocess.DEVNULL
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 cwd=cwd, env=env)
        finally:
            if out_path:
                out.close()
        self.started[p.pid] = (self.starttime(p.pid), p)
        return p.pid

    def reap(self, pid):
        e = self.started.get(pid)
        if e:
            e[1].poll()

    def alive_same(self, pid, st):
        """Is pid still the process that had this start time (and not a zombie)?"""
        self.reap(pid)
        f = self.stat_fields(pid)
        return bool(f) and f[19] == st and f[0] != "Z"

    @staticmethod
    def all_stats():
        out = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as f:
                        s = f.read()
                except OSError:
                    continue
                out[int(name)] = s[s.rfind(") ") + 2:].split()
        return out

    def descendants(self, pid, stats=None):
        """All descendant pids of pid (recursive, parents before children)."""
        stats = stats if stats is not None else self.all_stats()
        kids = {}
        for p, f in stats.items():
            kids.setdefault(int(f[1]), []).append(p)
        out, todo = [], [pid]
        while todo:
            for k in sorted(kids.get(todo.pop(0), [])):
                out.append(k)
                todo.append(k)
        return out

    def stop_tree(self, root):
        """SIGTERM a process we started, then SIGKILL what is left of its tree."""
        if root is None:
            return
        tree = [(p, self.starttime(p)) for p in [root] + self.descendants(root)]
        if tree[0][1] and self.alive_same(*tree[0]):
            try:
                os.kill(root, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for _ in range(50):
            if not (tree[0][1] and self.alive_same(*tree[0])):
                break
            time.sleep(0.1)
        for p, st in tree:
            if st and self.alive_same(p, st):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        e = self.started.get(root)
        if e:
            try:
                e[1].wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def cleanup(self):
        for pid, (st, _) in list(self.started.items()):
            if st and self.alive_same(pid, st):
                self.stop_tree(pid)

    def tree_ticks(self, pid):
        """utime+stime of pid and its descendants (all threads)."""
        if pid is None:
            return 0
        stats = self.all_stats()
        t = 0
        for p in [pid] + self.descendants(pid, stats):
            f = stats.get(p)
            if f:
                t += int(f[11]) + int(f[12])
        return t

    def tree_rss_kb(self, pid):
        """Resident memory of pid and its descendants (kB; shared pages counted per process)."""
        t = 0
        for p in [pid] + self.descendants(pid):
            try:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            t += int(line.split()[1])
            except OSError:
                pass
        return t

    def sys_ticks(self):
        """(busy ticks, elapsed ticks on all CPUs); the idle column under-counts on this VM."""
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu "):
                    x = line.split()
                    b = sum(int(x[i]) for i in (1, 2, 3, 6, 7, 8))
                    break
        return b, int(up * self.hz * self.ncpu)

    @staticmethod
    def psi_us():
        try:
            with open("/proc/pressure/cpu") as f:
                for line in f:
                    if line.startswith("some"):
                        return int(line.split()[4].replace("total=", ""))
        except (OSError, IndexError, ValueError):
            pass
        return 0

    @staticmethod
    def hexaddr(ip, port):
        a, b, c, d = (int(x) for x in ip.split("."))
        return f"{d:02X}{c:02X}{b:02X}{a:02X}:{int(port):04X}"

    def udp_rows(self):
        try:
            with open("/proc/net/udp") as f:
                return [ln.split() for ln in f.read().splitlines()[1:]]
        except OSError:
            return []

    def udp_bound(self, ip, port):
        lp = self.hexaddr(ip, port)
        return any(len(r) > 2 and r[1] == lp and r[2] == "00000000:0000" for r in self.udp_rows())

    def sock_drops(self, ip, port):
        """Kernel drop counter of the UDP socket(s) bound to ip:port."""
        lp = self.hexaddr(ip, port)
        return sum(int(r[-1]) for r in self.udp_rows() if len(r) > 2 and r[1] == lp)

    def wait_udp(self, ip, port):
        for _ in range(100):
            if self.udp_bound(ip, port):
                return True
            time.sleep(0.1)
        return False

    def rcvbuf(self):
        """Effective receive buffer of the proxy's UDP socket(s) (the kernel doubles SO_RCVBUF)."""
        r = subprocess.run(["ss", "-Hlumn", f"src {IP}:{self.proxy_port}"], capture_output=True, text=True)
        return "/".join(sorted(set(re.findall(r"rb([0-9]*)", r.stdout))))

    # The lab's ports are shared with other people's tests on this machine.
    def lab_listeners(self):
        """Every listener on the lab ports (with its process), as ss lines with the protocol first."""
        lines = []
        for proto, flag in (("udp", "-Hlnup"), ("tcp", "-Hlntp")):
            r = subprocess.run(["ss", flag], capture_output=True, text=True)
            lines += [f"{proto} {ln}" for ln in r.stdout.splitlines()]
        fp = self.flood_port if self.kind == "flood" else ""
        out = []
        for line in lines:
            f = line.split()
            if len(f) < 5:
                continue
            a = f[4]
            port = a.rsplit(":", 1)[-1]
            host = a[:len(a) - len(port) - 1]
            wild = host in ("0.0.0.0", "*", "[::]")
            hit = ((f[0] == "udp" and port == self.proxy_port and (host == IP or wild))
                   or (f[0] == "udp" and port == self.pbx_port and (host == PBX_IP or wild))
                   or (f[0] == "udp" and port == self.trunk_port and (host == TRUNK_IP or wild))
                   or (f[0] == "tcp" and port in (self.proxy_port, self.admin_port) and (host == IP or wild))
                   or (f[0] == "udp" and fp != "" and port == fp and (host == FLOOD_IP or wild)))
            if hit:
                out.append(line)
        return out

    def wait_ports_free(self):
        t0 = time.monotonic()
        last = -999.0
        wait = int(self.port_wait)
        while True:
            busy = self.lab_listeners()
            if not busy:
                return
            if time.monotonic() - t0 >= wait:
                print(f"lab ports still busy after {wait}s:", file=sys.stderr)
                print("\n".join(busy), file=sys.stderr)
                raise Abort("lab ports busy")
            if time.monotonic() - last >= 30:
                desc = " ".join(f"{x.split()[0]} {x.split()[4]} {x.split()[-1]}" for x in busy)
                self.log(f"lab ports busy (someone else's test?), waiting up to {wait}s: {desc} ")
                last = time.monotonic()
            time.sleep(2)

    def foreign_listeners(self, ours):
        """PIDs listening on the lab ports that are not ours, comma-separated."""
        ours = {str(p) for p in ours}
        out = []
        for line in self.lab_listeners():
            for pid in re.findall(r"pid=([0-9]*)", line):
                if pid not in ours:
                    out.append(pid)
        return ",".join(out)

    def wait_quiet(self):
        """Bounded wait for an idle machine; sets self.quiet (busy % of the last 1 s)."""
        t0 = time.monotonic()
        while True:
            a = self.sys_ticks()
            time.sleep(1)
            b = self.sys_ticks()
            self.quiet = int(f"{100 * (b[0] - a[0]) / (b[1] - a[1]) if b[1] > a[1] else 0:.0f}")
            if self.quiet <= int(self.quiet_pct):
                return
            if time.monotonic() - t0 >= int(self.quiet_max_wait):
                self.log(f"machine still {self.quiet}% busy, running anyway")
                return

    @staticmethod
    def load1():
        with open("/proc/loadavg") as f:
            return f.read().split()[0]

    @staticmethod
    def loadavg3():
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])

    def start_proxy(self, name, tag):
        logf = os.path.join(self.out_dir, f"{tag}.proxy.log")
        if name == "kamailio":
            pid = self.spawn(self.nice + ["timeout", "-k", "5", "900", "kamailio", "-DD", "-E", "-m", "512",
                                          "-M", "32", "-Y", os.path.join(self.out_dir, "run"),
                                          "-f", os.path.join(self.out_dir, "kamailio.cfg")], logf)
        else:
            d = os.path.join(self.out_dir, f"{tag}.scratch")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            binp, examples = self.sw_bin, self.sw_examples
            if name == "baseline":
                binp, examples = self.bl_bin, self.bl_examples
            shutil.copytree(examples, os.path.join(d, "examples"), symlinks=True)
            pid = self.spawn(self.nice + ["timeout", "-k", "5", "900", binp, "serve", "--config",
                                          "examples/bench.toml"], logf, cwd=d,
                             env=dict(os.environ, SIPWARDEN_LOG=self.sipwarden_log))
        self.proxy_pid = pid
        if not self.wait_udp(IP, self.proxy_port):
            print(f"{name} did not bind udp {IP}:{self.proxy_port} (see {logf})", file=sys.stderr)
            print("\n".join(read(logf).splitlines()[-5:]), file=sys.stderr)
            raise Abort("proxy did not start")
        time.sleep(0.5)
        return pid

    def start_uas(self, tag, count, secs):
        pid = self.spawn(self.nice + [
            "timeout", "-k", "5", str(secs + 90), "sipp", "-sf", os.path.join(SCN, "uas_rr.xml"),
            "-i", self.uas_at[0], "-p", self.uas_at[1], "-t", "u1", "-nostdin",
            "-m", str(2 * count + 100), "-buff_size", "4194304", "-timeout", f"{secs + 75}s",
            "-trace_err", "-error_file", f"{self.out_dir}/{tag}.uas.err", "-max_log_size", "20000000",
            "-trace_stat", "-stf", f"{self.out_dir}/{tag}.uas.stat.csv", "-fd", "1"],
            os.path.join(self.out_dir, f"{tag}.uas.out"))
        if not self.wait_udp(*self.uas_at):
            print(f"uas did not start (see {self.out_dir}/{tag}.uas.out)", file=sys.stderr)
            raise Abort("uas did not start")
        return pid

    def run_fg(self, argv, out_path, cwd, limit):
        """Run a bounded client in the foreground; its own timeout(1) is the bound, this
        is the backstop (limit seconds more)."""
        pid = self.spawn(argv, out_path, cwd=cwd)
        p = self.started[pid][1]
        try:
            p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.log(f"{argv[0]} (pid {pid}) outlived its bound; stopping it")
            self.stop_tree(pid)
        return pid

    def http_get(self, path, dest, token_file=None):
        """GET from sipwarden's admin listener into a file (the error text when it fails)."""
        try:
            req = urllib.request.Request(f"http://{IP}:{self.admin_port}{path}")
            if token_file:
                req.add_header("Authorization", "Bearer " + read(token_file).strip())
            text = urllib.request.urlopen(req, timeout=3).read().decode() + "\n"
        except Exception as e:  # noqa: BLE001 -- recorded in the file, as run.sh's traceback was
            text = f"{type(e).__name__}: {e}\n"
        write(dest, text)
        return text

    @staticmethod
    def read_or(path, default=""):
        try:
            with open(path, encoding="latin-1") as f:
                return f.read()
        except OSError:
            return default

    def count_503(self, path):
        if not os.path.exists(path):
            return 0
        return sum(1 for ln in self.read_or(path).splitlines() if "received 'SIP/2.0 503" in ln)

    @staticmethod
    def parse(stat, rtt=None):
        try:
            return parse_sipp.summary_line(stat, rtt)
        except Exception:  # noqa: BLE001 -- run.sh: `|| stats=""`
            return ""

    def trim_scratch(self, tag):
        cut = trim_logs(os.path.join(self.out_dir, f"{tag}.scratch"))
        if cut:
            write(os.path.join(self.out_dir, f"{tag}.logs-trimmed.txt"),
                  "".join(f"{k} {v} bytes, last {LOG_KEEP} kept\n" for k, v in cut.items()))

    @staticmethod
    def parse_many(stats, rtts, merged):
        try:
            return parse_sipp.summary_line_many(stats, rtts, merged)
        except Exception:  # noqa: BLE001 -- as parse(): a client that never wrote its stats
            return ""

    @staticmethod
    def time_line(path):
        """The numbers of /usr/bin/time -f '%U %S %e', on the last line ("Command exited with
        non-zero status N" comes first when SIPp saw failed calls)."""
        lines = [ln for ln in Harness.read_or(path).split("\n") if ln.strip()]
        return lines[-1].split() if lines else []

    def uac_ports(self):
        """The local ports of the REGISTER clients (UACS of them, two apart)."""
        return [str(int(self.reg_port) + 2 * k) for k in range(int(self.uacs))]

    def side_clients(self, tag, rate, secs):
        """UACS > 1: starts the clients beside the first one (which run_fg times); each has its
        share of the rate and of the calls, its own directory (its RTT file) and stat file.
        Returns [(pid, dir)]."""
        ports = self.uac_ports()
        n = len(ports)
        out = []
        for k, port in enumerate(ports[1:], start=1):
            share = split_rate(int(rate), n)[k]
            d = f"{self.out_dir}/{tag}.uac{k}"
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            pid = self.spawn(["/usr/bin/time", "-f", "%U %S %e", "-o", f"{d}/time"] + self.nice + [
                "timeout", "-k", "5", str(secs + 45), "sipp", f"{IP}:{self.proxy_port}",
                "-sf", os.path.join(SCN, "reg_auth.xml"), "-i", REG_IP, "-p", port,
                "-s", AUTH_USER, "-au", AUTH_USER, "-ap", AUTH_PASS, "-t", "u1",
                "-nostdin", "-r", str(share), "-rp", "1000", "-m", str(share * secs), "-l", str(share * 2 + 100),
                "-buff_size", "4194304", "-recv_timeout", "5000", "-timeout", f"{secs + 30}s",
                "-trace_stat", "-stf", f"{d}/stat.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
                "-trace_err", "-error_file", f"{d}/uac.err", "-max_log_size", "20000000"],
                f"{d}/sipp.out", cwd=d)
            out.append((pid, d))
        return out

    def wait_side_clients(self, side, limit):
        """Waits (bounded) for the side clients; returns their stat files, RTT files and CPU
        seconds (user + system)."""
        stats, rtts, cpu = [], [], 0.0
        for pid, d in side:
            p = self.started[pid][1]
            try:
                p.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                self.log(f"sipp (pid {pid}) outlived its bound; stopping it")
                self.stop_tree(pid)
            stats.append(f"{d}/stat.csv")
            rtts += sorted(f"{d}/{fn}" for fn in os.listdir(d) if fn.endswith("_rtt.csv"))[:1]
            t = self.time_line(f"{d}/time")
            if len(t) > 2:
                cpu += float(t[0]) + float(t[1])
        return stats, rtts, cpu

    # ------------------------------------------------------------ one run --
    def calls_run(self, name, rate, i):
        tag = f"{name}.r{rate}.{i}"
        count = int(rate) * int(self.run_secs)
        secs = int(self.run_secs)
        od = self.out_dir
        for attempt in (1, 2, 3):
            self.wait_ports_free()
            self.wait_quiet()
            load1 = self.load1()
            proxy = self.start_proxy(name, tag)
            uas = self.start_uas(tag, count, secs) if self.kind == "calls" else None
            p0, s0 = self.tree_ticks(proxy), self.psi_us()
            u0 = self.tree_ticks(uas) if uas else 0
            pd0, ud0 = self.sock_drops(IP, self.proxy_port), self.sock_drops(PBX_IP, self.pbx_port)
            for fn in os.listdir(od):
                if fn.endswith("_rtt.csv"):
                    os.remove(os.path.join(od, fn))
            side = []
            first_rate, first_count = int(rate), count
            if self.kind == "register":
                client = ["-sf", os.path.join(SCN, "reg_auth.xml"), "-i", REG_IP, "-p", self.reg_port,
                          "-s", AUTH_USER, "-au", AUTH_USER, "-ap", AUTH_PASS]
                side = self.side_clients(tag, rate, secs)
                first_rate = split_rate(int(rate), int(self.uacs))[0]
                first_count = first_rate * secs
            else:
                client = ["-sf", os.path.join(SCN, "uac_invite.xml"), "-i", self.uac_at[0],
                          "-p", self.uac_at[1], "-s", self.did, "-d", self.hold_ms]
            self.run_fg(["/usr/bin/time", "-f", "%U %S %e", "-o", f"{od}/{tag}.time"] + self.nice + [
                "timeout", "-k", "5", str(secs + 45), "sipp", f"{IP}:{self.proxy_port}", *client, "-t", "u1",
                "-nostdin", "-r", str(first_rate), "-rp", "1000", "-m", str(first_count),
                "-l", str(first_rate * 2 + 100),
                "-buff_size", "4194304", "-recv_timeout", "5000", "-timeout", f"{secs + 30}s",
                "-trace_stat", "-stf", f"{od}/{tag}.stat.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
                "-trace_err", "-error_file", f"{od}/{tag}.uac.err", "-max_log_size", "20000000"],
                f"{od}/{tag}.sipp.out", od, secs + 45 + 30)
            side_stats, side_rtts, side_cpu = self.wait_side_clients(side, secs + 45 + 30)
            rcvbuf = self.rcvbuf()
            p1, s1 = self.tree_ticks(proxy), self.psi_us()
            u1 = self.tree_ticks(uas) if uas else 0
            pd1, ud1 = self.sock_drops(IP, self.proxy_port), self.sock_drops(PBX_IP, self.pbx_port)
            t = self.time_line(f"{od}/{tag}.time")
            wall = t[2] if len(t) > 2 else "0"
            ccpu = ""
            if len(t) > 2:
                used = float(t[0]) + float(t[1]) + side_cpu
                ccpu = f"{100 * used / float(t[2]):.1f}" if float(t[2]) > 0 else "0"
            ours = [proxy] + self.descendants(proxy)
            if uas:
                ours += [uas] + self.descendants(uas)
            foreign = self.foreign_listeners(ours)
            metrics = ""
            if name != "kamailio":
                metrics = self.http_get("/metrics", f"{od}/{tag}.metrics.txt")
            rtts = sorted(fn for fn in os.listdir(od) if fn.endswith("_rtt.csv"))
            rtt = None
            if rtts:
                rtt = f"{od}/{tag}.rtt.csv"
                os.replace(os.path.join(od, rtts[0]), rtt)
            if uas:
                self.stop_tree(uas)
            self.stop_tree(proxy)
            self.trim_scratch(tag)
            if foreign:
                self.log(f"{tag}: foreign process(es) {foreign} listened on a lab port during the run; "
                         f"discarding it (attempt {attempt})")
                try:
                    os.replace(f"{od}/{tag}.stat.csv", f"{od}/{tag}.discarded{attempt}.stat.csv")
                except OSError:
                    pass
                if attempt < 3:
                    continue
            n503 = self.count_503(f"{od}/{tag}.uac.err")
            swstate = metrics_state(metrics) if name != "kamailio" else "-"
            if side:
                stats = self.parse_many([f"{od}/{tag}.stat.csv"] + side_stats, [rtt] + side_rtts,
                                        f"{od}/{tag}.rtt.all.csv")
            else:
                stats = self.parse(f"{od}/{tag}.stat.csv", rtt)
            ustats = self.parse(f"{od}/{tag}.uas.stat.csv") if uas else ""
            return calls_line(name, self.kind, self.unit, rate, stats, ustats, p1 - p0, u1 - u0, wall, self.hz,
                              s0, s1, ccpu, pd1 - pd0, rcvbuf, ud1 - ud0, n503, swstate, self.quiet, load1,
                              foreign, tag)
        return ""

    # ---------------------------------------------------------- flood run --
    def kam_rcv_requests(self):
        if not self.kamcmd:
            return ""
        try:
            r = subprocess.run(self.kamcmd + ["stats.get_statistics", "rcv_requests"], capture_output=True,
                               text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        return "\n".join(ln.split()[-1] for ln in r.stdout.splitlines() if ln.split())

    def flood_run(self, name, i):
        tag = f"{name}.flood.{self.flooder}.{i}"
        fsecs = int(self.flood_secs)
        lrate = int(self.legit_rate)
        count = lrate * fsecs
        od = self.out_dir
        for attempt in (1, 2, 3):
            self.wait_ports_free()
            self.wait_quiet()
            load1 = self.load1()
            proxy = self.start_proxy(name, tag)
            # Our proxy must be the one on the port before anything is sent: on this shared
            # machine someone else's gateway may have taken the port between the wait and the
            # start (sipwarden's UDP socket allows SO_REUSEPORT, so ours may even share it).
            kids = self.descendants(proxy)
            early = self.foreign_listeners([proxy] + kids)
            if early or not self.alive_same(proxy, self.starttime(proxy)) or not kids:
                self.log(f"{tag}: our {name} is not alone on the lab ports (foreign: {early or 'none'}; see "
                         f"{od}/{tag}.proxy.log); nothing sent, retrying (attempt {attempt})")
                self.stop_tree(proxy)
                try:
                    os.replace(f"{od}/{tag}.proxy.log", f"{od}/{tag}.discarded{attempt}.proxy.log")
                except OSError:
                    pass
                time.sleep(5)
                continue
            uas = None
            legit = None
            ldir = f"{od}/{tag}.legit.d"
            shutil.rmtree(ldir, ignore_errors=True)
            os.makedirs(ldir)
            if lrate > 0:
                uas = self.start_uas(tag, count, fsecs)
                # legitimate trunk calls, from the carrier, for the whole flood
                legit = self.spawn(self.nice + [
                    "timeout", "-k", "5", str(fsecs + 45), "sipp", f"{IP}:{self.proxy_port}",
                    "-sf", os.path.join(SCN, "uac_invite.xml"), "-i", TRUNK_IP, "-p", self.trunk_port, "-t", "u1",
                    "-nostdin", "-s", self.did, "-d", self.hold_ms, "-r", self.legit_rate, "-rp", "1000",
                    "-m", str(count), "-l", str(lrate * 2 + 100), "-buff_size", "4194304",
                    "-recv_timeout", "5000", "-timeout", f"{fsecs + 30}s", "-trace_stat",
                    "-stf", f"{od}/{tag}.legit.stat.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
                    "-trace_err", "-error_file", f"{od}/{tag}.legit.err", "-max_log_size", "20000000"],
                    f"{od}/{tag}.legit.sipp.out", cwd=ldir)
                time.sleep(0.3)
            r0 = ""
            if name != "kamailio":
                self.http_get("/metrics", f"{od}/{tag}.metrics0.txt")
            else:
                r0 = self.kam_rcv_requests()
            rss0 = self.tree_rss_kb(proxy)
            p0, s0 = self.tree_ticks(proxy), self.psi_us()
            pd0, ud0 = self.sock_drops(IP, self.proxy_port), self.sock_drops(PBX_IP, self.pbx_port)
            # The flood, bounded by FLOOD_SECS and timeout(1). It runs in the background and is
            # remembered, so that cleanup stops it if this program is stopped.
            timef = ["/usr/bin/time", "-f", "%U %S %e", "-o", f"{od}/{tag}.time"]
            if self.flooder == "blast":
                brate = "0" if self.flood_rate == "max" else self.flood_rate
                flood = self.spawn(timef + self.nice + [
                    "timeout", "-k", "5", str(fsecs + 15), f"{od}/reg_blast", FLOOD_IP, self.flood_port, IP,
                    self.proxy_port, str(fsecs), brate], f"{od}/{tag}.flood.out")
                flood_limit = fsecs + 15 + 30
            else:
                fr = int(self.flood_rate)
                flood = self.spawn(timef + self.nice + [
                    "timeout", "-k", "5", str(fsecs + 45), "sipp", f"{IP}:{self.proxy_port}",
                    "-sf", os.path.join(SCN, "reg_flood.xml"), "-i", FLOOD_IP, "-p", self.flood_port, "-t", "u1",
                    "-nostdin", "-r", self.flood_rate, "-rp", "1000", "-m", str(fr * fsecs), "-l", str(fr * 2 + 100),
                    "-buff_size", "4194304", "-recv_timeout", "5000", "-timeout", f"{fsecs + 30}s",
                    "-deadcall_wait", "5000", "-trace_stat", "-stf", f"{od}/{tag}.stat.csv", "-fd", "1"],
                    f"{od}/{tag}.flood.out", cwd=od)
                flood_limit = fsecs + 45 + 30
            # Guard: should our proxy die or a foreign listener appear on the lab ports, stop
            # the flood and the calls at once, so that they never hit someone else's gateway.
            guard = ""
            time.sleep(0.2)
            proxy_kids = self.descendants(proxy)
            gours = [proxy] + proxy_kids
            for p in (uas, legit, flood):
                if p:
                    gours += [p] + self.descendants(p)
            flood_st = self.started[flood][0]
            t_flood = time.monotonic()
            while self.alive_same(flood, flood_st):
                time.sleep(1)
                if not self.alive_same(flood, flood_st):
                    break
                whom = self.foreign_listeners(gours)
                alive = "yes" if all(os.path.exists(f"/proc/{k}") for k in proxy_kids) else "no"
                if whom or alive == "no":
                    guard = f"aborted(foreign:{whom or 'none'},proxy_alive:{alive})"
                    self.log(f"{tag}: {guard}: stopping the flood and the calls")
                    self.stop_tree(flood)
                    if legit:
                        self.stop_tree(legit)
                    break
                if time.monotonic() - t_flood > flood_limit:
                    self.log(f"{tag}: the flooder outlived its bound; stopping it")
                    self.stop_tree(flood)
                    break
            if self.alive_same(flood, flood_st):
                self.stop_tree(flood)
            self.started[flood][1].wait()
            p1, s1 = self.tree_ticks(proxy), self.psi_us()
            pd1, ud1 = self.sock_drops(IP, self.proxy_port), self.sock_drops(PBX_IP, self.pbx_port)
            rss1 = self.tree_rss_kb(proxy)
            rcvbuf = self.rcvbuf()
            banned = "n/a"
            r1 = ""
            if name == "kamailio":
                r1 = self.kam_rcv_requests()
                if self.kamcmd:
                    try:
                        r = subprocess.run(self.kamcmd + ["htable.dump", "ipban"], capture_output=True,
                                           text=True, timeout=10)
                        text = r.stdout + r.stderr
                    except subprocess.TimeoutExpired:
                        text = ""
                    write(f"{od}/{tag}.bans.txt", text)
                    banned = "yes" if FLOOD_IP in text else "no"
            else:
                self.http_get("/metrics", f"{od}/{tag}.metrics.txt")
                bans = self.http_get("/api/bans", f"{od}/{tag}.bans.txt",
                                     f"{od}/{tag}.scratch/examples/lab/admin.token")
                banned = "yes" if f'"{FLOOD_IP}"' in bans else "no"
            ours = [proxy] + self.descendants(proxy)
            if uas:
                ours += [uas] + self.descendants(uas)
            # the legit UAC is ours too (it binds the carrier's 127.0.0.3:5060)
            if legit:
                ours += [legit] + self.descendants(legit)
            foreign = self.foreign_listeners(ours)
            if guard:
                foreign += ("," if foreign else "") + guard
            lstats, n503 = "-", 0
            if legit:
                lp = self.started[legit][1]
                try:
                    lp.wait(timeout=fsecs + 45 + 30)
                except subprocess.TimeoutExpired:
                    self.stop_tree(legit)
                rtts = sorted(fn for fn in os.listdir(ldir) if fn.endswith("_rtt.csv"))
                if rtts:
                    os.replace(os.path.join(ldir, rtts[0]), f"{od}/{tag}.legit.rtt.csv")
                lstats = self.parse(f"{od}/{tag}.legit.stat.csv", f"{od}/{tag}.legit.rtt.csv") or "-"
                n503 = self.count_503(f"{od}/{tag}.legit.err")
                # the UAS had calls in flight until the UAC ended
                if name != "kamailio":
                    self.http_get("/metrics", f"{od}/{tag}.metrics2.txt")
                self.stop_tree(uas)
            # proxy state once the calls are over
            rss2 = self.tree_rss_kb(proxy)
            self.stop_tree(proxy)
            self.trim_scratch(tag)
            if foreign:
                self.log(f"{tag}: foreign process(es) {foreign} listened on a lab port during the run; "
                         f"discarding it (attempt {attempt})")
                if attempt < 3:
                    try:
                        os.replace(f"{od}/{tag}.flood.out", f"{od}/{tag}.discarded{attempt}.flood.out")
                    except OSError:
                        pass
                    continue
            if self.flooder == "blast":
                bl = [ln for ln in self.read_or(f"{od}/{tag}.flood.out").splitlines() if ln.startswith("blast ")]
                fstats = bl[-1] if bl else ""
            else:
                fstats = self.parse(f"{od}/{tag}.stat.csv") or "-"
            swstate = "-"
            if name != "kamailio":
                m0 = self.read_or(f"{od}/{tag}.metrics0.txt")
                m1 = self.read_or(f"{od}/{tag}.metrics.txt")
                m2p = f"{od}/{tag}.metrics2.txt"
                swstate = (f"sw_udp_read={metric(m1, 'sipwarden_udp_received_total') - metric(m0, 'sipwarden_udp_received_total')}"
                           f" sw_banned_dropped={metric(m1, 'sipwarden_banned_dropped_total') - metric(m0, 'sipwarden_banned_dropped_total')}"
                           f" sw_bans_flood={metric(m1, 'sipwarden_bans_flood_total')} sw_bans_active={metric(m1, 'sipwarden_bans_active')}"
                           f" sw_inbound_dropped={metric(m1, 'sipwarden_inbound_dropped_total')}"
                           f" sw_parse_errors={metric(m1, 'sipwarden_parse_errors_total')}"
                           f" sw_rejected={metric(m1, 'sipwarden_requests_rejected_total')}")
                if os.path.isfile(m2p):
                    swstate += f" sw_calls_left={metric(self.read_or(m2p), 'sipwarden_calls')}"
            return flood_line(name, self.flooder, self.flood_rate, self.legit_rate, fstats, lstats, p1 - p0, self.hz,
                              s0, s1, pd1 - pd0, ud1 - ud0, r0, r1, rss0, rss1, rss2, swstate,
                              self.read_or(f"{od}/{tag}.time"), n503, banned, rcvbuf, self.quiet, load1,
                              foreign, tag)
        return ""

    def attempt(self, fn, *args):
        """One run; what run.sh's `line=$(...)` subshell gave when the run had to stop
        (ports busy for PORT_WAIT, a proxy that did not start): an empty line. What the run
        started is stopped."""
        before = set(self.started)
        try:
            return fn(*args)
        except Abort:
            for pid in set(self.started) - before:
                st = self.started[pid][0]
                if st and self.alive_same(pid, st):
                    self.stop_tree(pid)
            return ""

    # -------------------------------------------------------------- main --
    def header(self):
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        lines = []
        if self.kind == "flood":
            lines.append(f"# {now} kind=flood proxies=[{self.proxies_raw}] flooder={self.flooder} flood_rate={self.flood_rate} "
                         f"flood_secs={self.flood_secs} legit_rate={self.legit_rate} repeats={self.repeats} hold_ms={self.hold_ms}")
            src = "bench/reg_blast.c" if self.flooder == "blast" else "scenarios/reg_flood.xml"
            lines.append(f"# flood {FLOOD_IP}:{self.flood_port} -> proxy {IP}:{self.proxy_port}, REGISTER without credentials "
                         f"({src}), allow-listed by neither; legit trunk uac {TRUNK_IP}:{self.trunk_port} -> proxy -> pbx uas "
                         f"{PBX_IP}:{self.pbx_port}, did={self.did}, udp")
        else:
            lines.append(f"# {now} kind={self.kind} proxies=[{self.proxies_raw}] rates=[{self.rates_raw}] "
                         f"extra_rates=[{self.extra_raw}] run_secs={self.run_secs} repeats={self.repeats} hold_ms={self.hold_ms}")
        if self.kind == "register":
            uacs = "" if self.uacs == "1" else f" ({self.uacs} SIPp clients sharing the rate, ports " \
                f"{' '.join(self.uac_ports())})"
            lines.append(f"# phone uac {REG_IP}:{self.reg_port}{uacs} -> proxy {IP}:{self.proxy_port}, REGISTER -> 401 -> "
                         f"REGISTER+Authorization -> 200, user={AUTH_USER}, udp; max_fail_pct={self.max_fail_pct} "
                         f"max_p95_ms={self.max_p95_ms} min_achieved=95%")
        elif self.kind == "calls" and self.direction == "outbound":
            lines.append(f"# pbx uac {PBX_IP}:{self.pbx_port} -> proxy {IP}:{self.proxy_port} -> trunk uas "
                         f"{TRUNK_IP}:{self.trunk_port}, number={self.did}, udp; max_fail_pct={self.max_fail_pct} "
                         f"max_p95_ms={self.max_p95_ms} min_achieved=95%")
        elif self.kind == "calls":
            lines.append(f"# trunk uac {TRUNK_IP}:{self.trunk_port} -> proxy {IP}:{self.proxy_port} -> pbx uas "
                         f"{PBX_IP}:{self.pbx_port}, did={self.did}, udp; max_fail_pct={self.max_fail_pct} "
                         f"max_p95_ms={self.max_p95_ms} min_achieved=95%")
        if "kamailio" in self.proxies:
            r = subprocess.run(["kamailio", "-v"], capture_output=True, text=True)
            first = (r.stdout.splitlines() or [""])[0]
            first = first[len("version: "):] if first.startswith("version: ") else first
            lines.append(f"# kamailio: {first} children={self.children} -m 512 -M 32{self.kam_note}")
        lines.append(f"# sipwarden: {self.sw_version}, SIPWARDEN_LOG={self.sipwarden_log}")
        if "baseline" in self.proxies:
            lines.append(f"# baseline: sipwarden {self.bl_version}")
        r = subprocess.run(["sipp", "-v"], capture_output=True, text=True)
        m = re.search(r"SIPp v[^ \n]*", r.stdout + r.stderr)
        model = ""
        r = subprocess.run(["lscpu"], capture_output=True, text=True)
        for ln in r.stdout.splitlines():
            if ln.startswith("Model name:"):
                model = ln[len("Model name:"):].lstrip()
        lines.append(f"# {m.group(0) if m else ''} kernel={os.uname().release} cpus={self.ncpu} model={model} "
                     f"nice={self.bench_nice} loadavg=[{self.loadavg3()}]")
        # run.py only: the bench config differs from a build's own lab (e.g. an old BASELINE_REV)
        lines += [f"# note: {n}" for n in self.notes]
        for ln in lines:
            self.say(ln)

    def finished(self):
        elapsed = int(time.monotonic() - self.t_start)
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self.say(f"# finished {now}, {elapsed} s, loadavg=[{self.loadavg3()}]")
        self.log(f"outputs in {self.out_dir} (summary: {self.summary})")

    def main(self):
        self.ensure_tools()
        if "sipwarden" in self.proxies:
            self.sw_version = self.prepare_sipwarden(self.sw_bin, self.sw_examples, self.sipwarden_bin,
                                                     self.sipwarden_rev, self.sw_template)
        if "baseline" in self.proxies:
            # the same preparation, into the baseline's own binary and examples
            self.bl_version = self.prepare_sipwarden(self.bl_bin, self.bl_examples, self.baseline_bin,
                                                     self.baseline_rev, self.bl_template)
        if "kamailio" in self.proxies:
            self.render_kamailio()
        if self.kind == "flood" and self.flooder == "blast":
            if subprocess.run(["gcc", "-O2", "-Wall", "-o", f"{self.out_dir}/reg_blast",
                               os.path.join(HERE, "reg_blast.c")]).returncode != 0:
                print("gcc reg_blast.c failed", file=sys.stderr)
                sys.exit(1)
        self.header()
        if self.kind == "flood":
            self.flood_main()
        else:
            self.sweep_main()
        self.finished()

    def flood_main(self):
        lines = {p: [] for p in self.proxies}
        final = {}
        for i in range(1, int(self.repeats) + 1):
            for p in self.proxies:
                self.log(f"{p}: flood run {i} ({self.flooder} at {self.flood_rate}/s for {self.flood_secs}s, "
                         f"legit {self.legit_rate} calls/s)")
                line = ""
                for tr in (1, 2, 3):
                    line = self.attempt(self.flood_run, p, i)
                    if line:
                        break
                    self.log(f"{p} flood run {i} gave no result (lab ports busy for PORT_WAIT?), try {tr} of 3")
                if not line:
                    self.say(f"run: {p} flood run {i} gave no result (lab ports busy for PORT_WAIT? see above); not counted")
                    continue
                self.say(f"run: {line}")
                lines[p].append(line)
        for p in self.proxies:
            if not lines[p]:
                self.say(f"FINAL {p} flood no run")
                continue
            final[p] = parse_sipp.median_line(lines[p])
            self.say(f"FINAL {final[p]}")
        ref = "baseline" if final.get("baseline") else "kamailio"
        if final.get("sipwarden") and final.get(ref):
            self.say(flood_ratio_line(final["sipwarden"], final[ref], ref))

    def sweep_main(self):
        alive = {p: True for p in self.proxies}
        best = {p: "" for p in self.proxies}
        bestlines = {p: [] for p in self.proxies}
        sweeps = {}

        def step(r):
            for p in self.proxies:
                if not alive[p]:
                    continue
                self.log(f"{p}: rate {r}")
                line = self.attempt(self.calls_run, p, r, 1)
                self.say(f"sweep: {line}")
                d = kv(line)
                if "rate" in d:
                    sweeps.setdefault(p, {})[int(d["rate"])] = d
                if passes(line, r, self.max_fail_pct, self.max_p95_ms):
                    best[p], bestlines[p] = r, [line]
                else:
                    alive[p] = False
        for r in self.rates:
            step(r)
        for r in self.extra:
            step(r)
        for i in range(2, int(self.repeats) + 1):
            for p in self.proxies:
                if not best[p]:
                    continue
                self.log(f"{p}: repeat {i} at rate {best[p]}")
                line = self.attempt(self.calls_run, p, best[p], i)
                self.say(f"repeat: {line}")
                bestlines[p].append(line)
        final = {}
        for p in self.proxies:
            if not best[p]:
                self.say(f"FINAL {p} {self.kind} no passing rate")
                continue
            npass = sum(1 for ln in bestlines[p] if passes(ln, best[p], self.max_fail_pct, self.max_p95_ms))
            final[p] = f"{parse_sipp.median_line(bestlines[p])} runs_passing={npass}"
            self.say(f"FINAL {final[p]}")
        # the ratios: against Kamailio, or against the baseline build in a before/after run
        ref = "baseline" if final.get("baseline") else "kamailio"
        if final.get("sipwarden") and final.get(ref):
            for ln in ratio_lines(final["sipwarden"], final[ref], sweeps, self.unit, ref):
                self.say(ln)
        if self.profile == "1" and self.kind == "calls" and best.get("sipwarden") and shutil.which("perf"):
            self.profile_run(best["sipwarden"])

    def profile_run(self, r):
        od = self.out_dir
        secs = int(self.run_secs)
        tag = f"sipwarden.r{r}.perf"
        self.log(f"profile: sipwarden at {r} calls/s under perf record (not counted)")
        try:
            self.wait_ports_free()
            self.wait_quiet()
            proxy = self.start_proxy("sipwarden", tag)
            uas = self.start_uas(tag, int(r) * secs, secs)
        except Abort:
            self.cleanup()
            return
        kids = self.descendants(proxy)
        swpid = str(kids[0]) if kids else ""
        perf = self.spawn(["timeout", "-k", "5", str(secs + 10), "perf", "record", "-F", "499", "-p", swpid,
                           "-o", f"{od}/{tag}.data", "--", "sleep", str(secs - 2)], f"{od}/{tag}.perf.log")
        self.run_fg(["timeout", "-k", "5", str(secs + 45), "sipp", f"{IP}:{self.proxy_port}",
                     "-sf", os.path.join(SCN, "uac_invite.xml"), "-i", TRUNK_IP, "-p", self.trunk_port, "-t", "u1",
                     "-nostdin", "-s", self.did, "-d", self.hold_ms, "-r", str(r), "-rp", "1000",
                     "-m", str(int(r) * secs), "-l", str(int(r) * 2 + 100), "-buff_size", "4194304",
                     "-recv_timeout", "5000", "-timeout", f"{secs + 30}s"], f"{od}/{tag}.sipp.out", od, secs + 75)
        try:
            self.started[perf][1].wait(timeout=secs + 30)
        except subprocess.TimeoutExpired:
            self.stop_tree(perf)
        self.stop_tree(uas)
        self.stop_tree(proxy)
        self.trim_scratch(tag)
        with open(f"{od}/{tag}.report.txt", "w") as f:
            subprocess.run(["perf", "report", "-i", f"{od}/{tag}.data", "--stdio", "--no-children", "--sort",
                            "dso,symbol", "--percent-limit", "1"], stdout=f, stderr=subprocess.DEVNULL)
        self.say(f"PROFILE {od}/{tag}.report.txt (top symbols, self time):")
        top = [ln for ln in self.read_or(f"{od}/{tag}.report.txt").splitlines() if re.match(r"^ +[0-9]", ln)]
        for ln in top[:25]:
            self.say(ln)


# Every knob, for the flags (--run-secs 3 is RUN_SECS=3; the environment wins).
KNOBS = ["KIND", "PROXIES", "CALL_RATES", "REG_RATES", "EXTRA_RATES", "RUN_SECS", "REPEATS", "HOLD_MS",
         "MAX_FAIL_PCT", "MAX_P95_MS", "CHILDREN", "KAM_MAXBUFFER", "DID", "PROXY_PORT", "PBX_PORT",
         "TRUNK_PORT", "ADMIN_PORT", "REG_PORT", "FLOOD_RATE", "FLOOD_SECS", "LEGIT_RATE", "FLOODER",
         "FLOOD_PORT", "UACS", "DIRECTION", "BASELINE_BIN", "BASELINE_REV", "SIPWARDEN_REV", "SIPWARDEN_BIN", "BUILD_DIR", "SIPWARDEN_LOG",
         "SW_MAX_TRANSACTIONS", "SW_TEMPLATE", "BASELINE_TEMPLATE", "OUT_DIR", "QUIET_PCT", "QUIET_MAX_WAIT",
         "PORT_WAIT", "BENCH_NICE", "PROFILE"]


def environment(argv):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Every flag is also an environment variable (--run-secs is RUN_SECS); when both are "
               "given, the environment wins. The knobs are described at the top of bench/run.py.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    for k in KNOBS:
        ap.add_argument("--" + k.lower().replace("_", "-"), dest=k, metavar=k)
    args = ap.parse_args(argv)
    env = dict(os.environ)
    for k in KNOBS:
        v = getattr(args, k)
        if v is None:
            continue
        if k in env:
            print(f"{k} is set in the environment ({env[k]!r}); --{k.lower().replace('_', '-')} ignored",
                  file=sys.stderr)
        else:
            env[k] = v
    return env


def main(argv=None):
    h = Harness(environment(sys.argv[1:] if argv is None else argv))
    atexit.register(h.cleanup)

    def stop(signum, _frame):
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    h.main()


if __name__ == "__main__":
    main()
