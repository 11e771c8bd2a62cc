#!/usr/bin/env python3
"""Media relay benchmark: sipwarden's embedded relay and rtpengine (userspace mode) side by side.

For each load level (CALLS concurrent calls, PPS packets per second each way per call) the same
driver (crates/testkit/src/bin/media_load.rs) sends RTP through each engine in turn, on loopback,
and counts what comes out; the engine's CPU is read from /proc over the steady window. A level
passes when less than 0.1 % of the packets are lost. Prints one line per run and a summary: the
highest passing rate of each engine, CPU per packet at each level, and the ratios.

    bench/media.py                          # levels 200 800 1600 2400 3200 calls, 10 s each
    LEVELS="200 400" SECS=5 bench/media.py
    WORKERS=2 bench/media.py                # the embedded relay with two threads

Needs rtpengine (Debian: rtpengine-daemon) and a Rust toolchain; builds the driver in release mode.
Engines are started and stopped by PID; every run is bounded by SECS.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEVELS = [int(x) for x in os.environ.get("LEVELS", "200 800 1600 2400 3200").split()]
PPS = int(os.environ.get("PPS", "50"))
SECS = int(os.environ.get("SECS", "10"))
WORKERS = int(os.environ.get("WORKERS", "1"))
MAX_LOSS_PCT = float(os.environ.get("MAX_LOSS_PCT", "0.1"))
# A run counts only when the driver reached the offered rate (else this machine's CPU, not the
# engine, set the rate).
MIN_RATE_SHARE = float(os.environ.get("MIN_RATE_SHARE", "0.99"))
# PIN=1: the engine on CPU 1, the driver on CPU 0, so that each engine has one core of its own
# and the driver another (on a 2-CPU machine they otherwise take CPU from each other).
PIN = os.environ.get("PIN", "1") == "1" and (os.cpu_count() or 1) >= 2
NG = os.environ.get("NG", "127.0.0.1:22231")
OUT = Path(os.environ.get("OUT_DIR", f"/tmp/sipwarden-media-bench.{int(time.time())}"))


def log(msg):
    print(msg, flush=True)


def kv(line):
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


def passes(r):
    return (float(r["loss_pct"]) < MAX_LOSS_PCT
            and float(r["window_pps"]) >= MIN_RATE_SHARE * float(r["offered_pps"]))


def rtpengine_ping(addr, timeout=0.2):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(b"p1 d7:command4:pinge", (host, int(port)))
        return s.recv(256).startswith(b"p1 d6:result4:pong")
    except OSError:
        return False
    finally:
        s.close()


def wait(what, cond, within=10.0):
    end = time.monotonic() + within
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    sys.exit(f"media.py: {what} not ready in {within} s")


def pinned(cpu, argv):
    return ["taskset", "-c", str(cpu)] + argv if PIN else argv


def start_engine(engine, calls, logf):
    if engine == "embedded":
        p = subprocess.Popen(
            pinned(1, [str(ROOT / "target/release/media_load"), "relay", str(calls), "20000",
                       str(WORKERS)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, text=True)
        line = p.stdout.readline().strip()
        if line != "ready":
            sys.exit(f"media.py: the relay host said {line!r}")
        return p
    port_max = 30000 + 4 * calls + 100
    p = subprocess.Popen(
        pinned(1, ["rtpengine", "--config-file=none", "--foreground", "--log-stderr", "--log-level=4",
         "--table=-1", "--interface=127.0.0.1", f"--listen-ng={NG}", "--port-min=30000",
         f"--port-max={port_max}"]),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf)
    wait("rtpengine", lambda: p.poll() is None and rtpengine_ping(NG))
    return p


def stop_engine(p):
    if p.stdin:
        p.stdin.close()
    else:
        p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run(engine, calls):
    with open(OUT / f"{engine}-{calls}.log", "w") as logf:
        p = start_engine(engine, calls, logf)
        try:
            argv = pinned(0, [str(ROOT / "target/release/media_load"), "drive", engine, str(calls),
                              str(PPS), str(SECS), str(p.pid)])
            if engine == "rtpengine":
                argv.append(NG)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=SECS + 120)
        finally:
            stop_engine(p)
    if r.returncode != 0:
        sys.exit(f"media.py: driver failed: {r.stderr.strip()}")
    line = r.stdout.strip().splitlines()[-1]
    return line


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    log(f"==> building the driver (cargo build --release -p sipwarden-testkit --bin media_load)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sipwarden-testkit", "--bin", "media_load"],
                   cwd=ROOT, check=True)
    v = subprocess.run(["rtpengine", "--version"], capture_output=True, text=True)
    ver = (v.stdout + v.stderr).strip().replace("Version: ", "")
    cpus = os.cpu_count()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    head = (f"# media relay benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
            f"sipwarden {rev} (embedded relay, {WORKERS} worker) vs rtpengine {ver} (userspace, "
            f"--table=-1, default threads); {cpus} CPUs; {PPS} packets/s each way per call, "
            f"172-byte RTP; {SECS} s per run; pass: loss < {MAX_LOSS_PCT} % and at least "
            f"{MIN_RATE_SHARE:.0%} of the offered rate relayed; "
            + ("engine pinned to CPU 1, driver to CPU 0" if PIN else "not pinned"))
    lines = [head]
    log(head)
    results = {"embedded": {}, "rtpengine": {}}
    for calls in LEVELS:
        # Alternating engines at each level: both see the same moment of this shared machine.
        for engine in ("embedded", "rtpengine"):
            line = run(engine, calls)
            results[engine][calls] = kv(line)
            line += "  PASS" if passes(results[engine][calls]) else "  FAIL"
            lines.append(line)
            log(line)
    summary = []
    best = {}
    for engine, rs in results.items():
        ok = [c for c, r in rs.items() if passes(r)]
        best[engine] = max(ok) if ok else 0
        bp = float(rs[best[engine]]["window_pps"]) if ok else 0.0
        summary.append(f"{engine}: best passing {best[engine]} calls ({bp:.0f} packets/s relayed)")
    for calls in LEVELS:
        e, r = results["embedded"].get(calls), results["rtpengine"].get(calls)
        if e and r:
            ce, cr = float(e["cpu_us_per_pkt"]), float(r["cpu_us_per_pkt"])
            ratio = ce / cr if cr > 0 else float("nan")
            summary.append(
                f"{calls} calls: CPU per packet embedded {ce:.2f} us, rtpengine {cr:.2f} us "
                f"(ratio {ratio:.2f}); loss {float(e['loss_pct']):.3f} % vs {float(r['loss_pct']):.3f} %")
    if best["rtpengine"]:
        summary.append(f"rate ratio (best passing, embedded/rtpengine): "
                       f"{best['embedded'] / best['rtpengine']:.2f}")
    for s in summary:
        log(s)
    (OUT / "summary.txt").write_text("\n".join(lines + summary) + "\n")
    log(f"==> {OUT}/summary.txt")


if __name__ == "__main__":
    main()
