"""Markdown tables and the gnuplot PNG from the results dict."""
import os
import shutil
import subprocess

import run


def _fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _cell(vals, digits=0, ratio=True):
    """'ser / kam (ratio)' for two servers, the bare value for one."""
    txt = " / ".join(_fmt(v, digits) for v in vals)
    if ratio and len(vals) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in vals):
        r = vals[0] / vals[1]
        txt += f" ({r:.2f})" if r >= 0.01 else " (<0.01)"
    return txt


def mode_table(res, mode):
    names = [s for s in res["servers"] if mode in res["ladder"].get(s, {})]
    if not names:
        return ""
    by = {s: {st["rate"]: st for st in res["ladder"][s][mode]} for s in names}
    rates = sorted({r for s in names for r in by[s]})
    who = " / ".join(names) + (" (ratio)" if len(names) == 2 else "")
    lines = [f"### {mode}  — cells: {who}", "",
             "| offered cps | CPU µs/call | ok | failed | retrans | p50 ms | p95 ms | p99 ms |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in rates:
        sts = [by[s].get(rate, {"skipped": True}) for s in names]

        def g(key, sts=sts):
            return [None if st.get("skipped") else st.get(key) for st in sts]
        row = [str(rate), _cell(g("cpu_us")), _cell(g("ok"), ratio=False),
               _cell(g("failed"), ratio=False), _cell(g("retrans"), ratio=False),
               _cell(g("p50"), 1), _cell(g("p95"), 1), _cell(g("p99"), 1)]
        dead = [s for s, st in zip(names, sts) if st.get("alive") is False]
        if dead:
            row[0] += " (" + ", ".join(dead) + " died)"
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def summary(res):
    names = res["servers"]
    out = ["### Summary", ""]
    for mode in res["modes"]:
        vals = [run.max_sustained(res["ladder"][s][mode]) if mode in res["ladder"].get(s, {}) else None
                for s in names]
        clean = [run.max_sustained(res["ladder"][s][mode], clean=True)
                 if mode in res["ladder"].get(s, {}) else None for s in names]
        out.append(f"- max sustained rate with 0 failed calls, {mode}: "
                   f"{_cell(vals)} cps ({' / '.join(names)}); with 0 retransmissions too: "
                   f"{_cell(clean)} cps")
    reo = {s: sum(st.get("reordered", 0) for m in res["ladder"].get(s, {}).values() for st in m)
           for s in names}
    if any(reo.values()):
        out.append("- calls failed because a 180 was relayed after the 200 (sipp error log): "
                   + ", ".join(f"{s} {n}" for s, n in reo.items()))
    if res.get("memory"):
        m = [res["memory"].get(s, {}) for s in names]
        out.append(f"- shm bytes per live INVITE transaction (server's own figure): "
                   f"{_cell([x.get('shm_per_txn') for x in m])}; "
                   f"PSS bytes per transaction: {_cell([x.get('pss_per_txn') for x in m])}; "
                   f"held {' / '.join(_fmt(x.get('held')) for x in m)}, "
                   f"server counts {' / '.join(_fmt(x.get('transactions')) for x in m)}")
    if res.get("overload"):
        o = [res["overload"].get(s, {}) for s in names]
        cap = res.get("overload_cpu")
        if cap:
            out.append(f"- relay saturation with each server capped at {cap:g} core (cgroup): "
                       + " / ".join(f"{_fmt(res['overload'].get(s, {}).get('saturation'))}"
                                    for s in names) + " cps")
        out.append(f"- overload at 2x saturation (relay{f', servers capped at {cap:g} core' if cap else ''}; "
                   f"saturation = highest ladder rate with ≥ 99.9 % ok; "
                   "goodput = calls completed while sipp was offering / offering time): offered "
                   f"{' / '.join(_fmt(x.get('rate')) for x in o)} cps for "
                   f"{' / '.join(_fmt(x.get('offer_secs'), 1) for x in o)} s, goodput "
                   f"{' / '.join(_fmt(x.get('goodput'), 0) for x in o)} calls/s = "
                   f"{_cell([x.get('goodput_pct') for x in o])} % of saturation")
        for s, x in zip(names, o):
            if x and not x.get("saturated"):
                out.append(f"  - {s} lost no call on the whole ladder: its saturation is "
                           f"above {x.get('saturation')} cps, so this is not yet overload")
    if "relay-tls" in res["modes"]:
        neg = []
        for s in names:
            seen = sorted({st.get("tls") or "no handshake logged"
                           for st in res["ladder"].get(s, {}).get("relay-tls", [])
                           if not st.get("skipped")})
            if seen:
                neg.append(f"{s} {', '.join(seen)}")
        if neg:
            out.append("- relay-tls, TLS version and cipher suite negotiated (stunnel's log): "
                       + "; ".join(neg))
    for note in res.get("notes", []):
        out.append(f"- {note}")
    logs = res.get("log_errors", {})
    if logs:
        out.append("- server log lines at error level or worse: "
                   + ", ".join(f"{s} {logs.get(s, {}).get('count', 0)}" for s in names))
        for s in names:
            for line in logs.get(s, {}).get("sample", []):
                out.append(f"  - {s}: `{line}`")
    return "\n".join(out) + "\n"


def markdown(res):
    h = res["header"]
    head = [f"## bench: {h['date']} on {h['host']}", "",
            "| | |", "|---|---|"]
    for k, v in h.items():
        head.append(f"| {k} | {v} |")
    parts = ["\n".join(head) + "\n",
             "CPU µs/call: user+system time of all server processes over the step, per offered "
             "call. failed = offered − successful. retrans: sipp's retransmissions. p50/p95/p99: "
             "sipp -trace_rtt response times (INVITE→200 for relay/stateless, OPTIONS→200 for "
             "uas), in sipp's clock ticks, so 0 means under one tick. relay-tcp: relay with "
             "both sipp legs on TCP (-t t1, one connection each way) and the servers "
             "relaying over TCP.\n"]
    if "relay-tls" in res["modes"]:
        parts.append(
            "relay-tls: relay with the caller leg over TLS and the callee leg over UDP. sipp "
            "(-t t1) connects over plain TCP to a stunnel client on 127.0.0.1, which opens one "
            "TLS connection to the server's TLS port (self-signed EC P-256 certificate, no client "
            "certificate asked for, TLS 1.2 or 1.3 as negotiated — see the summary); the servers "
            "relay statefully with t_relay_to_udp to the sipp UAS over UDP. CPU µs/call counts "
            "the server processes only: the TLS handshake (one per step, amortised over its "
            "calls), decrypting the caller's requests and encrypting the replies to it, parsing, "
            "the transaction, and the UDP leg. stunnel's CPU (the TLS client) and sipp's are the "
            "caller's and not counted. Compare with relay-tcp, whose callee leg is TCP too, and "
            "relay, all UDP.\n")
    if "register-auth" in res["modes"]:
        parts.append(
            "register-auth: one call is one authenticated registration by sipp as a phone: "
            "REGISTER, 401 with a digest challenge, REGISTER with the answer, 200; "
            "p50/p95/p99 from the first REGISTER to the 200. Both servers run "
            "www_authorize/www_challenge, then save(\"location\") into usrloc in memory "
            "(db_mode 0).\n")
    if "call-auth" in res["modes"]:
        parts.append(
            "call-auth: one call is one authenticated call through the proxy: INVITE, 407 with a "
            "digest challenge, ACK (absorbed by the proxy), INVITE with the answer, relayed "
            "statefully and record-routed to the sipp UAS, 200 (no 180), then ACK and BYE "
            "loose-routed through the proxy without auth, 200; p50/p95/p99 from the first INVITE "
            "to the 200. Both servers run proxy_authorize/proxy_challenge, consume_credentials, "
            "record_route and t_relay (the classic ser.cfg's call path).\n")
    auth = [m for m in ("register-auth", "call-auth") if m in res["modes"]]
    if auth:
        parts.append(
            f"{' and '.join(auth)}: auth_db checks the credentials against a SQLite subscriber "
            "table with plain passwords (calculate_ha1 on: one row lookup and the HA1 MD5 per "
            "authenticated request), qop off. Every call is by the first of the subscribers "
            "(sipp 3.6.1 cannot take per-call credentials from an injection file into "
            "[authentication]). Each server has its own SQLite file with the same users, as the "
            "two schemas' version rows differ (SER 0.9's subscriber is 6, Kamailio 5.6's 7): "
            "ser's made with serctl db init + serctl add, Kamailio's with the sqlite3 CLI.\n")
    parts += [mode_table(res, m) for m in res["modes"]]
    parts.append(summary(res))
    return "\n".join(p for p in parts if p)


def plot(res, png, tmp):
    """CPU µs/call and success % against offered rate, every server and
    mode. Returns the PNG path or None when gnuplot is unavailable."""
    if not shutil.which("gnuplot"):
        return None
    series = []
    for s in res["servers"]:
        for mode in res["modes"]:
            steps = [st for st in res["ladder"].get(s, {}).get(mode, []) if not st.get("skipped")]
            if not steps:
                continue
            path = os.path.join(tmp, f"plot-{s}-{mode}.dat")
            with open(path, "w") as f:
                for st in steps:
                    ok_pct = 100.0 * st["ok"] / st["calls"] if st["calls"] else 0
                    f.write(f"{st['rate']} {st['cpu_us']:.1f} {ok_pct:.2f}\n")
            series.append((path, f"{s} {mode}", 1 if s == "ser" else 2,
                           {"relay": 1, "stateless": 2, "uas": 3, "relay-tcp": 4, "relay-tls": 6,
                            "register-auth": 7, "call-auth": 8}.get(mode, 5)))
    if not series:
        return None

    def plots(col):
        return ", ".join(
            f"'{p}' using 1:{col} with linespoints lc {lc} dt {dt} pt {dt + 4} title '{t}'"
            for p, t, lc, dt in series)
    script = f"""set terminal pngcairo size 1200,500 font ',10'
set output '{png}'
set multiplot layout 1,2 title 'ser vs Kamailio ({res["header"]["host"]}, {res["header"]["date"]})'
set xlabel 'offered calls/s'
set grid
set key top left
set ylabel 'server CPU µs per call'
set yrange [0:*]
plot {plots(2)}
set ylabel 'successful calls %'
set yrange [0:105]
set key bottom left
plot {plots(3)}
unset multiplot
"""
    gp = os.path.join(tmp, "plot.gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("gnuplot failed:", r.stderr[-500:])
        return None
    return png
