#!/usr/bin/env python3
"""Unit tests of bench/run.py's pure parts (standard library only, no proxy, no SIPp):

    python3 -m unittest discover -s bench -p 'test_*.py'     # or: python3 bench/test_run.py

Templates (every ${var} filled, no leftovers, no drift from examples/lab.toml,
bench/kamailio.cfg and bench/address.list), the pass criteria, the median and the
ratios, the run lines, and SIPp stat parsing on a real run's files (bench/testdata/).
"""
import os
import re
import sys
import tomllib
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import parse_sipp  # noqa: E402
import run  # noqa: E402

T = os.path.join(HERE, "templates")
DATA = os.path.join(HERE, "testdata")
LAB = dict(ip="127.0.0.1", proxy_port="5060", pbx_ip="127.0.0.10", pbx_port="5080",
           trunk_ip="127.0.0.3", trunk_port="5060", admin_port="8080", reg_ip="127.0.0.2")


def tmpl(name):
    return run.read(os.path.join(T, name))


def sw_values(max_transactions=None, **over):
    v = dict(LAB, **over)
    return run.sipwarden_values(v["ip"], v["proxy_port"], v["pbx_ip"], v["pbx_port"], v["trunk_ip"],
                                v["trunk_port"], v["admin_port"], v["reg_ip"], max_transactions)


def no_comments(text):
    """Lines that are not plain comments (Kamailio's #! directives stay)."""
    return [ln for ln in text.splitlines() if not (ln.startswith("#") and not ln.startswith("#!"))]


class Templates(unittest.TestCase):
    def assertFilled(self, text, values, out):
        self.assertEqual(run.template_names(text), set(values), "template placeholders vs values")
        self.assertNotIn("${", out)
        for v in values.values():
            if v:
                self.assertIn(str(v).strip().splitlines()[0], out)

    def test_every_variable_filled(self):
        cases = [
            ("sipwarden.toml.tmpl", sw_values()),
            ("sipwarden.toml.tmpl", sw_values("2000000")),
            ("bench-accounts.toml.tmpl", run.accounts_values("bench", "benchpass")),
            ("kamailio.cfg.tmpl", run.kamailio_values("127.0.0.1", "5060", "127.0.0.10", "5080",
                                                      "/o/address.list", "unix:/o/ctl", "2")),
            ("kamailio.cfg.tmpl", run.kamailio_values("127.0.0.1", "5060", "127.0.0.10", "5080",
                                                      "/o/address.list", "unix:/o/ctl", "4", "4194304")),
            ("address.list.tmpl", run.address_values("127.0.0.3", "5060", "127.0.0.10", "5080",
                                                     "127.0.0.2", "5062")),
        ]
        for name, values in cases:
            with self.subTest(name=name):
                text = tmpl(name)
                self.assertFilled(text, values, run.render(text, values))

    def test_missing_value_is_an_error(self):
        v = sw_values()
        del v["admin_port"]
        with self.assertRaises(KeyError):
            run.render(tmpl("sipwarden.toml.tmpl"), v)

    def test_kamailio_variables_pass_through(self):
        # Kamailio's own $avp(...), $si, $sht(...) are not placeholders
        out = run.render("$avp(peer_tag) $si $sht(ipban=>$si) $$ ${x}", {"x": "1"})
        self.assertEqual(out, "$avp(peer_tag) $si $sht(ipban=>$si) $$ 1")

    def test_sipwarden_config_is_the_lab_with_the_bench_changes(self):
        # what run.sh's regular expressions made of examples/lab.toml, structurally
        lab = tomllib.loads(run.read(os.path.join(HERE, "..", "examples", "lab.toml")))
        out = tomllib.loads(run.render(tmpl("sipwarden.toml.tmpl"), sw_values()))
        self.assertEqual(run.toml_diff(out, run.bench_view_of_lab(lab, sw_values())), [])
        self.assertEqual(out["listen"], {"udp": ["127.0.0.1:5060"], "tcp": ["127.0.0.1:5060"]})
        self.assertEqual(out["ban"]["allow"], ["127.0.0.2/32"])
        self.assertEqual(out["accounts"]["file"], "examples/bench-accounts.toml")
        self.assertNotIn("transactions", out)
        self.assertFalse(run.flooder_listed(run.render(tmpl("sipwarden.toml.tmpl"), sw_values()), "127.0.0.66"))

    def test_policy_templates_are_the_bench_config_with_and_without_the_policy(self):
        base = tomllib.loads(run.render(tmpl("sipwarden.toml.tmpl"), sw_values()))
        off = tomllib.loads(run.render(tmpl("sipwarden-nopolicy.toml.tmpl"), sw_values()))
        on = tomllib.loads(run.render(tmpl("sipwarden-policy.toml.tmpl"), sw_values()))
        # Off: no [policy], no caller-ID policy; otherwise the bench config.
        self.assertNotIn("policy", off)
        self.assertNotIn("caller_id", off["trunk"][0])
        base_off = dict(base)
        base_off.pop("policy")
        base_off["trunk"] = [{k: v for k, v in t.items() if k != "caller_id"} for t in base["trunk"]]
        self.assertEqual(run.toml_diff(off, base_off), [])
        # On: 50 countries, every kind of velocity limit, a rate table and caps.
        p = on["policy"]
        countries = [c for c in p["allow_countries"] + p["block_countries"] if len(c) == 2]
        self.assertEqual(len(set(countries)), 50)
        kinds = {lim["kind"] for lim in p["limits"]}
        self.assertEqual(kinds, {"concurrent", "calls_per_second", "calls_per_minute", "calls_per_hour",
                                 "international_per_hour", "same_number_per_hour", "minutes_per_day"})
        self.assertEqual(p["spend"]["rates"], "examples/bench-rates.csv")
        rows = run.read(os.path.join(T, "bench-rates.csv")).splitlines()[1:]
        self.assertEqual(len({r.split(",")[0] for r in rows}), 200)
        self.assertIn("caller_id", on["trunk"][0])

    def test_sipwarden_other_ports(self):
        out = tomllib.loads(run.render(tmpl("sipwarden.toml.tmpl"),
                                       sw_values(proxy_port="5070", pbx_port="5090", admin_port="8081")))
        self.assertEqual(out["listen"]["udp"], ["127.0.0.1:5070"])
        self.assertEqual(out["pbx"]["address"], "127.0.0.10:5090")
        self.assertEqual(out["admin"]["listen"], "127.0.0.1:8081")

    def test_max_transactions_diagnostic(self):
        text = run.render(tmpl("sipwarden.toml.tmpl"), sw_values("2000000"))
        self.assertTrue(text.endswith('dir = "lab-data"\n\n# bench diagnostic (SW_MAX_TRANSACTIONS), not the lab value\n'
                                      '[transactions]\nmax_transactions = 2000000\n'))
        self.assertEqual(tomllib.loads(text)["transactions"], {"max_transactions": 2000000})
        self.assertTrue(run.render(tmpl("sipwarden.toml.tmpl"), sw_values()).endswith('dir = "lab-data"\n'))

    def test_drift_is_reported(self):
        lab = tomllib.loads(run.read(os.path.join(HERE, "..", "examples", "lab.toml")))
        lab["ratelimit"]["per_ip_rps"] = 100
        del lab["registrar"]["max_bindings"]
        out = tomllib.loads(run.render(tmpl("sipwarden.toml.tmpl"), sw_values()))
        self.assertEqual(run.toml_diff(out, run.bench_view_of_lab(lab, sw_values())),
                         ["ratelimit.per_ip_rps", "registrar.max_bindings (only in the template)"])

    def test_accounts(self):
        out = tomllib.loads(run.render(tmpl("bench-accounts.toml.tmpl"), run.accounts_values("bench", "benchpass")))
        self.assertEqual(out["realm"], "sipwarden.lab")
        self.assertEqual(out["account"], [{"user": "bench", "ha1_md5": "5fad4e715dbe0aa914fbf5718fe2e930",
                                           "ha1_sha256": "c1c1c3418d5f232bbe39b373f9847f66f05dc381f6b63638218d29ff76cb9395"}])

    def test_kamailio_template_is_bench_kamailio_cfg(self):
        # rendered with the defaults bench/kamailio.cfg carries, only comments differ
        out = run.render(tmpl("kamailio.cfg.tmpl"), run.kamailio_values(
            "127.0.0.1", "5060", "127.0.0.10", "5080", "./address.list", "unix:/tmp/kamailio_bench_ctl", "2"))
        self.assertEqual(no_comments(out), no_comments(run.read(os.path.join(HERE, "kamailio.cfg"))))

    def test_kamailio_rendering(self):
        out = run.render(tmpl("kamailio.cfg.tmpl"), run.kamailio_values(
            "127.0.0.1", "5070", "127.0.0.10", "5090", "/o/address.list", "unix:/o/kamailio_ctl", "4", "4194304"))
        self.assertIn('#!substdef "!BENCH_PORT!5070!g"\n', out)
        self.assertIn('#!substdef "!BENCH_DOWNSTREAM!127.0.0.10:5090!g"\n', out)
        self.assertIn('#!substdef "!BENCH_ADDRFILE!/o/address.list!g"\n', out)
        self.assertIn('#!substdef "!BENCH_CTL!unix:/o/kamailio_ctl!g"\n', out)
        self.assertRegex(out, r"\nchildren=4 +# [^\n]*\nmaxbuffer=4194304   # bench diagnostic \(KAM_MAXBUFFER\)\n")
        self.assertEqual(len(re.findall(r"^maxbuffer=", out, re.M)), 1)

    def test_address_list_template_is_bench_address_list(self):
        out = run.render(tmpl("address.list.tmpl"), run.address_values(
            "127.0.0.3", "5060", "127.0.0.10", "5080", "127.0.0.2", "5062"))
        self.assertEqual(no_comments(out), no_comments(run.read(os.path.join(HERE, "address.list"))))


class Criteria(unittest.TestCase):
    LINE = ("sipwarden calls rate=1000 calls_per_s=998.75 fail_pct=0.00 mean_ms=0.04 p50_ms=0.00 p95_ms=0.00 "
            "p99_ms=0.00 max_ms=16.00 ok=15000 created=15000 foreign=none run=sipwarden.r1000.1")

    def test_pass(self):
        self.assertTrue(run.passes(self.LINE, "1000", "1", "50"))

    def test_fail_pct(self):
        self.assertFalse(run.passes(self.LINE.replace("fail_pct=0.00", "fail_pct=1.00"), "1000", "1", "50"))
        self.assertTrue(run.passes(self.LINE.replace("fail_pct=0.00", "fail_pct=0.99"), "1000", "1", "50"))

    def test_p95(self):
        self.assertTrue(run.passes(self.LINE.replace("p95_ms=0.00", "p95_ms=50.00"), "1000", "1", "50"))
        self.assertFalse(run.passes(self.LINE.replace("p95_ms=0.00", "p95_ms=50.01"), "1000", "1", "50"))
        self.assertFalse(run.passes(self.LINE.replace("p95_ms=0.00", "p95_ms=nan"), "1000", "1", "50"))

    def test_achieved(self):
        self.assertTrue(run.passes(self.LINE.replace("calls_per_s=998.75", "calls_per_s=950.00"), "1000", "1", "50"))
        self.assertFalse(run.passes(self.LINE.replace("calls_per_s=998.75", "calls_per_s=949.99"), "1000", "1", "50"))

    def test_register_spelling(self):
        self.assertTrue(run.passes(self.LINE.replace("calls_per_s", "regs_per_s"), "1000", "1", "50"))

    def test_foreign_and_empty(self):
        self.assertFalse(run.passes(self.LINE.replace("foreign=none", "foreign=1234"), "1000", "1", "50"))
        self.assertFalse(run.passes("", "1000", "1", "50"))


class MedianAndRatios(unittest.TestCase):
    def test_median(self):
        lines = ["kamailio calls rate=500 calls_per_s=499.74 cpu_ms_per_call=0.527 proxy_rcvbuf=524288 foreign=none run=a",
                 "kamailio calls rate=500 calls_per_s=499.80 cpu_ms_per_call=0.500 proxy_rcvbuf=524288 foreign=none run=b",
                 "kamailio calls rate=500 calls_per_s=499.70 cpu_ms_per_call=0.510 proxy_rcvbuf=524288 foreign=none run=c"]
        self.assertEqual(parse_sipp.median_line(lines),
                         "kamailio calls runs=3 rate=500 calls_per_s=499.74 cpu_ms_per_call=0.510 "
                         "proxy_rcvbuf=524288 foreign=none run=a")
        self.assertEqual(parse_sipp.median_line(lines[:2]).split()[4], "calls_per_s=499.77")
        self.assertIsNone(parse_sipp.median_line([]))

    def test_ratios(self):
        sw = "sipwarden calls runs=3 rate=4000 calls_per_s=3990.00 fail_pct=0.000 p95_ms=0.000 proxy_cpu_pct=60.1 cpu_ms_per_call=0.150 runs_passing=3"
        ka = "kamailio calls runs=3 rate=2000 calls_per_s=1998.00 fail_pct=0.000 p95_ms=4.000 proxy_cpu_pct=99.0 cpu_ms_per_call=0.495 runs_passing=3"
        sweeps = {"sipwarden": {2000: run.kv("rate=2000 cpu_ms_per_call=0.160")},
                  "kamailio": {2000: run.kv("rate=2000 cpu_ms_per_call=0.480")}}
        self.assertEqual(run.ratio_lines(sw, ka, sweeps, "calls", "kamailio"), [
            "RESULT kamailio  max_passing_rate=2000 calls_per_s=1998.00 cpu_ms_per_call=0.495 proxy_cpu_pct=99.0 p95_ms=4.000 fail_pct=0.000",
            "RESULT sipwarden max_passing_rate=4000 calls_per_s=3990.00 cpu_ms_per_call=0.150 proxy_cpu_pct=60.1 p95_ms=0.000 fail_pct=0.000",
            "RATIO sipwarden/kamailio max_passing_rate=2.00 calls_per_s=2.00 cpu_per_call_at_own_max=0.30",
            "RATIO sipwarden/kamailio cpu_per_call_at_2000_per_s=0.33 (sipwarden 0.160 ms, kamailio 0.480 ms; one sweep run each)",
        ])

    def test_ratios_register(self):
        sw = "sipwarden register runs=1 rate=4000 regs_per_s=3990.00 fail_pct=0.000 p95_ms=0.000 proxy_cpu_pct=60.1 cpu_ms_per_reg=0.150"
        bl = "baseline register runs=1 rate=4000 regs_per_s=3000.00 fail_pct=0.000 p95_ms=0.000 proxy_cpu_pct=60.1 cpu_ms_per_reg=0.300"
        out = run.ratio_lines(sw, bl, {}, "regs", "baseline")
        self.assertEqual(out[2], "RATIO sipwarden/baseline max_passing_rate=1.00 regs_per_s=1.33 cpu_per_reg_at_own_max=0.50")
        self.assertEqual(len(out), 3)

    def test_flood_ratio(self):
        self.assertEqual(run.flood_ratio_line("sipwarden flood absorbed_per_s=40000 proxy_cpu_pct=50.0 cpu_us_per_msg=1.00 sock_drops=0",
                                              "kamailio flood absorbed_per_s=20000 proxy_cpu_pct=100.0 cpu_us_per_msg=4.00 sock_drops=9",
                                              "kamailio"),
                         "RATIO sipwarden/kamailio absorbed_per_s=2.00 (sipwarden 40000, kamailio 20000) proxy_cpu_pct=0.50 "
                         "(sipwarden 50.0, kamailio 100.0) cpu_us_per_msg=0.25 sock_drops sipwarden 0 kamailio 9")


class Lines(unittest.TestCase):
    def test_metrics_state(self):
        text = ("# HELP x\nsipwarden_calls 0\nsipwarden_calls_total 7\nsipwarden_transactions_client 100\n"
                "sipwarden_transactions_server 23\nsipwarden_inbound_dropped_total 0\n")
        self.assertEqual(run.metrics_state(text), "sw_calls_left=0 sw_txns_held=123 sw_inbound_dropped=0")
        self.assertEqual(run.metrics_state("URLError: refused\n"), "sw_calls_left= sw_txns_held=0 sw_inbound_dropped=")
        self.assertEqual(run.metric(text, "sipwarden_calls_total"), 7)
        self.assertEqual(run.metric(text, "absent"), 0)

    def test_calls_line(self):
        stats = ("created=7500 ok=7500 failed=0 fail_pct=0.00 elapsed_s=15.01 ok_per_s=499.74 created_per_s=499.74 "
                 "retrans=0 dead_msgs=0 ooc_msgs=0 rt1_avg_ms=0.00 rtt_n=7500 mean_ms=0.00 p50_ms=0.00 p95_ms=0.00 "
                 "p99_ms=0.00 max_ms=8.00")
        line = run.calls_line("kamailio", "calls", "calls", "500", stats, "created=7500 retrans=0", 395, 83, "15.02",
                              100, 1000, 1487000, "6.5", 0, "524288", 0, 0, "-", 0, "1.21", "", "kamailio.r500.1")
        self.assertEqual(line, "kamailio calls rate=500 calls_per_s=499.74 fail_pct=0.00 mean_ms=0.00 p50_ms=0.00 "
                         "p95_ms=0.00 p99_ms=0.00 max_ms=8.00 ok=7500 created=7500 uac_retrans=0 uas_retrans=0 "
                         "uas_calls=7500 proxy_cpu_pct=26.3 cpu_ms_per_call=0.527 uas_cpu_pct=5.5 uac_cpu_pct=6.5 "
                         "proxy_sock_drops=0 proxy_rcvbuf=524288 uas_sock_drops=0 cpu_pressure_pct=9.9 uac_got_503=0 "
                         "prerun_busy_pct=0 load1=1.21 foreign=none run=kamailio.r500.1")
        self.assertTrue(run.passes(line, "500", "1", "50"))

    def test_calls_line_without_stats(self):
        line = run.calls_line("sipwarden", "register", "regs", "4000", "", "", 0, 0, "0", 100, 0, 0, "", 0, "",
                              0, 0, "sw_calls_left=0 sw_txns_held=0 sw_inbound_dropped=0", 3, "0.5", "", "t")
        self.assertIn("regs_per_s=0 fail_pct=100.00", line)
        self.assertIn("cpu_ms_per_reg=nan", line)
        self.assertFalse(run.passes(line, "4000", "1", "50"))


class Sipp(unittest.TestCase):
    """parse_sipp on the stat and RTT files of a real run (a 3 s KIND=calls run at 500/s
    through sipwarden, and its UAS)."""

    def test_uac(self):
        d = run.kv(parse_sipp.summary_line(os.path.join(DATA, "uac.stat.csv"), os.path.join(DATA, "uac.rtt.csv")))
        with open(os.path.join(DATA, "expected.txt")) as f:
            expected = dict(ln.split(" ", 1) for ln in f.read().splitlines())
        self.assertEqual(d, run.kv(expected["uac"]))
        self.assertEqual(int(d["created"]), int(d["ok"]) + int(d["failed"]))
        self.assertEqual(int(d["rtt_n"]), int(d["ok"]))

    def test_uas(self):
        line = parse_sipp.summary_line(os.path.join(DATA, "uas.stat.csv"))
        with open(os.path.join(DATA, "expected.txt")) as f:
            expected = dict(ln.split(" ", 1) for ln in f.read().splitlines())
        self.assertEqual(line, expected["uas"])
        self.assertNotIn("p95_ms", line)

    def test_percentile(self):
        self.assertEqual(parse_sipp.pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95), 10)
        self.assertEqual(parse_sipp.pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.50), 5)  # round(4.5) = 4
        self.assertEqual(parse_sipp.hms("00:00:01:500000"), 1.5)

    def test_clients_side_by_side_add_up(self):
        """UACS=2: two clients' files read as one client that made every call."""
        import tempfile
        stat, rtt = os.path.join(DATA, "uac.stat.csv"), os.path.join(DATA, "uac.rtt.csv")
        one = run.kv(parse_sipp.summary_line(stat, rtt))
        with tempfile.TemporaryDirectory() as d:
            merged = os.path.join(d, "all.csv")
            two = run.kv(parse_sipp.summary_line_many([stat, stat], [rtt, None, rtt], merged))
            with open(rtt) as f:
                rows = sum(1 for _ in f) - 1
            with open(merged) as f:
                self.assertEqual(sum(1 for _ in f), 1 + 2 * rows, "one header, every row of both")
        for k in ("created", "ok", "failed", "retrans", "rtt_n"):
            self.assertEqual(int(two[k]), 2 * int(one[k]), k)
        for k in ("ok_per_s", "created_per_s"):
            self.assertAlmostEqual(float(two[k]), 2 * float(one[k]), places=1)
        for k in ("fail_pct", "elapsed_s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms", "rt1_avg_ms"):
            self.assertAlmostEqual(float(two[k]), float(one[k]), places=1, msg=k)

    def test_rate_shares_add_up(self):
        self.assertEqual(run.split_rate(20001, 2), [10001, 10000])
        self.assertEqual(run.split_rate(22500, 3), [7500, 7500, 7500])
        self.assertEqual(sum(run.split_rate(19999, 4)), 19999)
        self.assertEqual(run.split_rate(500, 1), [500])



class Scratch(unittest.TestCase):
    def test_logs_keep_their_tail_from_a_line_start(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            data = os.path.join(d, "lab-data")
            os.makedirs(data)
            lines = [f"line {i:05d}\n" for i in range(1000)]
            for fn in ("security.log", "events.jsonl", "sipwarden.db"):
                with open(os.path.join(data, fn), "w") as f:
                    f.writelines(lines)
            size = os.path.getsize(os.path.join(data, "security.log"))
            cut = run.trim_logs(d, keep=100)
            self.assertEqual(cut, {"events.jsonl": size, "security.log": size}, "the database is kept")
            with open(os.path.join(data, "security.log")) as f:
                kept = f.read()
            self.assertTrue(kept.endswith("line 00999\n"))
            self.assertTrue(kept.startswith("line "), "cut at a line start")
            self.assertLessEqual(len(kept), 100)
            self.assertEqual(os.path.getsize(os.path.join(data, "sipwarden.db")), size)
            self.assertEqual(run.trim_logs(d, keep=100), {}, "nothing left to cut")


if __name__ == "__main__":
    unittest.main()
