#!/usr/bin/env python3
"""Summarise one SIPp run: final line of the -trace_stat CSV plus, optionally,
the -trace_rtt CSV (per-call response times of RTD 1). Prints key=value.

Also a module: bench/run.py imports summary_line() and median_line(), which
are what the command line prints (bench/run.sh runs it as a command)."""
import sys

def last_row(path):
    with open(path, encoding="latin-1") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    head = lines[0].split(";")
    row = lines[-1].split(";")
    return dict(zip(head, row)), head, [l.split(";") for l in lines[1:]]

def hms(v):
    # "HH:MM:SS" or "HH:MM:SS:uuuuuu"
    parts = v.split(":")
    s = int(parts[0]) * 3600 + int(parts[1]) * 60 + int(parts[2])
    if len(parts) > 3:
        s += int(parts[3]) / 1e6
    return s

def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]

def main():
    stat = sys.argv[1]
    rtt = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    print(summary_line(stat, rtt))

def summary_line(stat, rtt=None):
    """The key=value line of one run (stat: -trace_stat CSV; rtt: -trace_rtt CSV or None)."""
    d, head, rows = last_row(stat)
    num = lambda k: float(d.get(k, "0") or 0)
    created = num("TotalCallCreated")
    ok = num("SuccessfulCall(C)")
    failed = num("FailedCall(C)")
    # elapsed: from start to the last stat line; also take the first-to-last
    # period where calls were being created to get the offered rate.
    start = float(d["StartTime"].split("\t")[-1])
    cur = float(d["CurrentTime"].split("\t")[-1])
    elapsed = max(cur - start, 1e-9)
    out = {
        "created": int(created), "ok": int(ok), "failed": int(failed),
        "fail_pct": (100.0 * failed / created) if created else 0.0,
        "elapsed_s": elapsed,
        "ok_per_s": ok / elapsed,
        "created_per_s": created / elapsed,
        "retrans": int(num("Retransmissions(C)")),
        "dead_msgs": int(num("DeadCallMsgs(C)")),
        "ooc_msgs": int(num("OutOfCallMsgs(C)")),
        "rt1_avg_ms": hms(d.get("ResponseTime1(C)", "00:00:00:000000")) * 1000,
    }
    # per-second series of replies to dead calls (flood test: did replies stop?)
    i_dead = head.index("DeadCallMsgs(P)") if "DeadCallMsgs(P)" in head else None
    i_ooc = head.index("OutOfCallMsgs(P)") if "OutOfCallMsgs(P)" in head else None
    if i_dead is not None:
        series = []
        for r in rows:
            if len(r) > max(i_dead, i_ooc or 0):
                series.append(int(float(r[i_dead] or 0)) + int(float(r[i_ooc] or 0)))
        out["stray_replies_series"] = ",".join(str(x) for x in series)
    if rtt:
        out.update(rtt_fields(rtt))
    return " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items())

def rtt_fields(rtt):
    """Response-time fields of a -trace_rtt CSV (RTD 1)."""
    vals = []
    with open(rtt) as f:
        next(f, None)
        for line in f:
            p = line.strip().split(";")
            if len(p) >= 3 and p[2].strip() == "1":
                try:
                    vals.append(float(p[1]))
                except ValueError:
                    pass
    vals.sort()
    return {"rtt_n": len(vals), "mean_ms": (sum(vals) / len(vals)) if vals else float("nan"),
            "p50_ms": pct(vals, 0.50), "p95_ms": pct(vals, 0.95), "p99_ms": pct(vals, 0.99),
            "max_ms": vals[-1] if vals else float("nan")}

def summary_line_many(stats, rtts, merged_rtt_path):
    """summary_line for SIPp clients that ran side by side (UACS > 1): one line, as if one
    client had made every call; the response times of all are merged into merged_rtt_path."""
    line = merged_line([summary_line(st) for st in stats])
    rtt = merged_rtt(rtts, merged_rtt_path)
    if rtt:
        line += " " + " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in rtt_fields(rtt).items())
    return line

def merged_line(lines):
    """Summary lines of SIPp clients that ran side by side (UACS > 1) -> one line, as if one
    client had run them all: counts and rates add up, percentiles come from every client's
    response times together (merged_rtt), elapsed is the longest."""
    ds = [dict(t.split("=", 1) for t in l.split() if "=" in t) for l in lines if l.strip()]
    if not ds:
        return ""
    f = lambda d, k: float(d.get(k, "0") or 0)
    created = sum(f(d, "created") for d in ds)
    failed = sum(f(d, "failed") for d in ds)
    ok = sum(f(d, "ok") for d in ds)
    out = {
        "created": int(created), "ok": int(ok), "failed": int(failed),
        "fail_pct": (100.0 * failed / created) if created else 0.0,
        "elapsed_s": max(f(d, "elapsed_s") for d in ds),
        "ok_per_s": sum(f(d, "ok_per_s") for d in ds),
        "created_per_s": sum(f(d, "created_per_s") for d in ds),
        "retrans": int(sum(f(d, "retrans") for d in ds)),
        "dead_msgs": int(sum(f(d, "dead_msgs") for d in ds)),
        "ooc_msgs": int(sum(f(d, "ooc_msgs") for d in ds)),
        "rt1_avg_ms": (sum(f(d, "rt1_avg_ms") * f(d, "ok") for d in ds) / ok) if ok else 0.0,
    }
    return " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items())

def merged_rtt(paths, dest):
    """Concatenates -trace_rtt CSVs (one header) into dest; returns dest, or None if none."""
    paths = [p for p in paths if p]
    if not paths:
        return None
    with open(dest, "w") as out:
        for i, p in enumerate(paths):
            with open(p) as f:
                head = next(f, "")
                if i == 0:
                    out.write(head)
                for line in f:
                    out.write(line)
    return dest

def median_lines():
    """stdin: summary lines 'label k=v k=v ...' of repeated runs.
    stdout: one line with the median of every numeric field."""
    line = median_line(sys.stdin)
    if line is not None:
        print(line)

def median_line(lines):
    """Summary lines 'label k=v k=v ...' of repeated runs -> one line with the
    median of every numeric field (None when there are none)."""
    import statistics
    rows = [l.split() for l in lines if l.strip()]
    if not rows:
        return None
    label = [t for t in rows[0] if "=" not in t]
    keys = [t.split("=", 1)[0] for t in rows[0] if "=" in t]
    out = []
    for k in keys:
        vals = []
        for r in rows:
            kv = dict(t.split("=", 1) for t in r if "=" in t)
            vals.append(kv.get(k, ""))
        try:
            nums = [float(v) for v in vals]
            m = statistics.median(nums)
            # bench/: three decimals below 10 (CPU ms per call is ~0.1-0.5)
            out.append(f"{k}={m:.0f}" if all(float(v).is_integer() for v in vals) and m.is_integer()
                       else f"{k}={m:.3f}" if abs(m) < 10 else f"{k}={m:.2f}")
        except ValueError:
            out.append(f"{k}={vals[0]}")
    return " ".join(label + [f"runs={len(rows)}"] + out)

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "median":
        median_lines()
    else:
        main()
