"""Driving sipp: a UAS behind the proxy, a UAC that offers N calls at a
rate, and what its -trace_stat / -trace_rtt files say."""
import glob
import os
import subprocess
import time

import procs

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN = os.path.join(HERE, "scenarios")


def _scenario(name):
    """`uac`/`uas` are sipp's built-ins; anything else is our XML."""
    if name in ("uac", "uas"):
        return ["-sn", name]
    return ["-sf", os.path.join(SCEN, f"{name}.xml")]


def _transport(transport):
    """sipp's -t for "udp" (its default, u1: one socket) or "tcp" (t1: one
    connection carrying every call, as a proxy's peer would)."""
    return {"udp": [], "tcp": ["-t", "t1"]}[transport]


def start_uas(scenario, port, workdir, limit=600, transport="udp"):
    """A sipp UAS on 127.0.0.1:`port` over `transport`, running until
    stopped."""
    os.makedirs(workdir, exist_ok=True)
    cmd = ["sipp", *_scenario(scenario), *_transport(transport),
           "-i", "127.0.0.1", "-p", str(port),
           "-nostdin", "-buff_size", "4194304", "-max_recv_loops", "10000",
           "-trace_err", "-error_file", os.path.join(workdir, "uas_errors.log")]
    g = procs.Group(cmd, workdir, os.path.join(workdir, "uas.out"), "sipp-uas", limit)
    end = time.time() + 5
    while time.time() < end and not procs.bound(port, transport):
        if not g.alive():
            break
        time.sleep(0.05)
    return g


def run_uac(scenario, target_port, local_port, rate, calls, workdir, slack=8, transport="udp",
            extra=()):
    """Offer `calls` calls at `rate`/s to 127.0.0.1:`target_port` over
    `transport`; at most
    calls/rate + `slack` seconds (sipp -timeout), enforced again from
    outside. Returns a dict of figures (see parse_stat) plus rtt list."""
    os.makedirs(workdir, exist_ok=True)
    secs = calls / rate + slack
    stat = os.path.join(workdir, "stat.csv")
    cmd = ["sipp", *_scenario(scenario), *_transport(transport), f"127.0.0.1:{target_port}",
           "-i", "127.0.0.1", "-p", str(local_port),
           "-r", str(rate), "-m", str(calls), "-l", str(max(1000, rate * 30)),
           "-timeout", f"{int(secs)}s", "-timeout_error",
           "-nostdin", "-buff_size", "4194304", "-max_recv_loops", "10000",
           "-max_sched_loops", "10000",
           "-trace_stat", "-stf", stat, "-fd", "1",
           "-trace_rtt", "-rtt_freq", "50",
           "-trace_err", "-error_file", os.path.join(workdir, "uac_errors.log"), *extra]
    g = procs.Group(cmd, workdir, os.path.join(workdir, "uac.out"), "sipp-uac", secs + 10)
    t0 = time.time()
    rc = g.wait(secs + 5)
    wall = time.time() - t0
    g.stop()
    res = parse_stat(stat)
    res["rc"] = rc
    res["wall"] = wall
    res["rtt"] = parse_rtt(workdir)
    res["reordered"] = count_reordered(os.path.join(workdir, "uac_errors.log"))
    return res


def count_reordered(path):
    """Calls sipp aborted because a 180 came after the 200 it had already
    taken (the proxy relayed them out of order), from its -trace_err log."""
    try:
        with open(path, encoding="latin-1") as f:
            text = f.read()
    except OSError:
        return 0
    n = 0
    for chunk in text.split("Aborting call on unexpected message")[1:]:
        msg = chunk.split("received '", 1)[-1]
        if msg.startswith("SIP/2.0 180"):
            n += 1
    return n


def parse_stat(path):
    """Last row of sipp's ';'-separated statistics CSV."""
    out = {"ok": 0, "sipp_failed": 0, "retrans": 0, "outgoing": 0}
    try:
        with open(path, encoding="latin-1") as f:
            rows = [line.rstrip("\n").split(";") for line in f if line.strip()]
    except OSError:
        return out
    if len(rows) < 2:
        return out
    head, last = rows[0], rows[-1]
    col = {name: i for i, name in enumerate(head)}

    def num(name):
        i = col.get(name)
        try:
            return int(last[i]) if i is not None else 0
        except (ValueError, IndexError):
            return 0
    out["ok"] = num("SuccessfulCall(C)")
    out["sipp_failed"] = num("FailedCall(C)")
    out["retrans"] = num("Retransmissions(C)")
    out["outgoing"] = num("OutgoingCall(C)")
    out.update(_offer_window(rows, col))
    return out


def _epoch(cell):
    """sipp writes times as 'date<TAB>time<TAB>epoch'."""
    try:
        return float(cell.split("\t")[-1])
    except ValueError:
        return None


def _offer_window(rows, col):
    """Calls completed while sipp was still offering new ones, and for how
    long it offered: the first periodic row (-fd 1) where OutgoingCall(C)
    has its final value closes the window. Goodput under overload is
    offer_ok / offer_secs; stragglers finished after that do not count."""
    try:
        oc, sc = col["OutgoingCall(C)"], col["SuccessfulCall(C)"]
        ct, st = col["CurrentTime"], col["StartTime"]
        data = rows[1:]
        final = int(data[-1][oc])
        for r in data:
            if int(r[oc]) >= final:
                t0, t1 = _epoch(r[st]), _epoch(r[ct])
                if t0 is None or t1 is None or t1 <= t0:
                    return {}
                return {"offer_ok": int(r[sc]), "offer_secs": round(t1 - t0, 3)}
    except (KeyError, ValueError, IndexError):
        pass
    return {}


def parse_rtt(workdir):
    """Response times in ms from every *_rtt.csv (Date_ms;response_time_ms;rtd_no)."""
    vals = []
    for path in glob.glob(os.path.join(workdir, "*_rtt.csv")):
        with open(path, encoding="latin-1") as f:
            for line in f:
                parts = line.strip().split(";")
                if len(parts) >= 2:
                    try:
                        vals.append(float(parts[1]))
                    except ValueError:
                        continue
    return vals


def percentile(vals, p):
    if not vals:
        return None
    s = sorted(vals)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def version():
    try:
        r = subprocess.run(["sipp", "-v"], capture_output=True, text=True, timeout=5)
        for line in (r.stdout + r.stderr).splitlines():
            if "SIPp v" in line:
                return line.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "sipp ?"
