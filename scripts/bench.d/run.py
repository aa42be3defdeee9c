"""The measurements: call-rate ladders per server and mode, shm per live
transaction, and goodput under overload. Results are plain dicts so the
report (and a later re-plot from the JSON) need nothing else."""
import os
import re
import subprocess
import time

import authdb
import procs
import servers
import sipp
import stunnel

# Which sipp scenarios each kind of mode (servers.MODES) uses: (uac, uas
# or None).
SCENARIOS = {
    "relay": ("uac", "uas"),
    "stateless": ("uac", "uas_no180"),
    "uas": ("options_uac", None),
    "register-auth": ("register_auth_uac", None),
    "call-auth": ("call_auth_uac", "uas_no180"),
}
# Seconds after sipp ends before CPU is read again: lets the server finish
# the replies and timers the last calls caused, so they count to this step.
SETTLE = 1.0


def log(msg):
    print(msg, flush=True)


LOG_BAD = re.compile(r"ERROR|CRIT|ALERT: (?!.*exited normally)|panic|BUG", re.I)


class Bench:
    def __init__(self, opts, tmp):
        self.o = opts
        self.tmp = tmp
        self.seq = 0
        # (certificate, key) for the TLS modes, made on first use
        self.tls_files = None
        # (ser db, Kamailio db, sipp users CSV) for the auth modes
        # (servers.AUTH_KINDS), made on first use and shared by them
        self.auth = None
        # per server: log lines at error level or worse, and a sample
        self.log_errors = {}

    def collect_log(self, srv):
        """After `srv` stopped: keep count and a few of its error lines."""
        e = self.log_errors.setdefault(srv.name, {"count": 0, "sample": []})
        try:
            with open(srv.group.log.name, errors="replace") as f:
                for line in f:
                    if LOG_BAD.search(line):
                        e["count"] += 1
                        if len(e["sample"]) < 5:
                            e["sample"].append(f"{srv.mode}: {line.strip()[:200]}")
        except (OSError, AttributeError):
            pass

    def make_server(self, name, mode):
        self.seq += 1
        d = os.path.join(self.tmp, f"{self.seq:03d}-{name}-{mode}")
        port, uas_port = procs.free_ports(2)
        args = (d, port, uas_port, mode, self.o.children, self.o.shm)
        if name == "ser":
            srv = servers.Ser(self.o.ser_bin, self.o.serctl_bin, *args)
        else:
            srv = servers.Kamailio(*args)
        srv.cpu_cap = self.o.server_cpu
        if servers.caller_transport(mode) == "tls":
            if self.tls_files is None:
                try:
                    self.tls_files = stunnel.make_cert(os.path.join(self.tmp, "tls"))
                except (OSError, subprocess.SubprocessError) as e:
                    raise servers.ServerError(f"test certificate: {e}")
            srv.tls_files = self.tls_files
        if servers.kind(mode) in servers.AUTH_KINDS:
            srv.db_file = self.auth_files()[0 if name == "ser" else 1]
        return srv

    def auth_files(self):
        if self.auth is None:
            n = self.o.auth_users
            log(f"  making {n} subscribers (serctl for ser, sqlite3 for Kamailio)")
            try:
                self.auth = authdb.make(self.tmp, self.o.serctl_bin, n)
            except (OSError, subprocess.SubprocessError) as e:
                raise servers.ServerError(f"subscriber databases: {e}")
        return self.auth

    def step(self, srv, mode, rate, calls, uac=None, uas=None, tag=""):
        """One rate step against a running server. Returns a result dict."""
        d_uac, d_uas = SCENARIOS[servers.kind(mode)]
        caller, callee = servers.caller_transport(mode), servers.callee_transport(mode)
        uac = uac or d_uac
        uas = uas if uas is not None else d_uas
        self.seq += 1
        wd = os.path.join(srv.dir, f"step-{self.seq:03d}-{rate}{tag}")
        limit = calls / rate + 60
        ua = sipp.start_uas(uas, srv.uas_port, wd, limit, callee) if uas else None
        local, tunnel_port = procs.free_ports(2)
        # sipp's caller leg: straight to the server, or for TLS plain TCP
        # to a stunnel client that opens the one TLS connection to it
        target, sipp_tr, tunnel = srv.port, caller, None
        if caller == "tls":
            try:
                tunnel = stunnel.Client(tunnel_port, srv.port, wd, limit)
            except OSError as e:
                if ua:
                    ua.stop()
                raise servers.ServerError(str(e))
            target, sipp_tr = tunnel_port, "tcp"
        pids = srv.pids()
        cpu0 = procs.cpu_us(pids)
        t0 = time.time()
        extra = []
        if servers.kind(mode) in servers.AUTH_KINDS:
            # every call registers, or calls as, the same subscriber (the
            # table holds --auth-users of them): see register_auth_uac.xml
            # for why one
            user, pw = authdb.users(1)[0]
            self.auth_files()
            extra = ["-s", user, "-au", user, "-ap", pw]
        r = sipp.run_uac(uac, target, local, rate, calls, wd, transport=sipp_tr, extra=extra)
        if ua:
            ua.stop()
        if tunnel:
            # sipp has closed its connection: the TLS one's teardown
            # counts to this step, like its handshake
            tunnel.stop()
        time.sleep(SETTLE)
        # children forked later (none expected) are counted from now on
        cpu1 = procs.cpu_us(srv.pids())
        rtt = r.pop("rtt")
        res = {
            "rate": rate, "calls": calls, "ok": r["ok"],
            "failed": max(0, calls - r["ok"]), "sipp_failed": r["sipp_failed"],
            "retrans": r["retrans"], "reordered": r["reordered"], "sipp_rc": r["rc"], "wall": round(r["wall"], 2),
            "cpu_us": (cpu1 - cpu0) / calls if calls else None,
            "p50": sipp.percentile(rtt, 50), "p95": sipp.percentile(rtt, 95),
            "p99": sipp.percentile(rtt, 99), "rtt_n": len(rtt),
            "alive": srv.alive(), "elapsed": round(time.time() - t0, 2),
            "offer_ok": r.get("offer_ok"), "offer_secs": r.get("offer_secs"),
        }
        if tunnel:
            res["tls"] = tunnel.negotiated()
        log(f"  {srv.name:8s} {mode:9s} {rate:5d} cps: ok {res['ok']}/{calls} "
            f"retrans {res['retrans']} cpu {res['cpu_us']:.0f} us/call "
            f"p50 {res['p50']} p95 {res['p95']} ms ({res['elapsed']} s)"
            + (f" [{res['tls']}]" if tunnel else ""))
        if not res["alive"]:
            log(f"  !! {srv.name} died during this step; see {srv.group.log.name}")
        return res

    def ladder(self, name, mode):
        """Every rate in turn on one server instance; a server that dies is
        restarted; above a rate that served under half its calls the rest
        are skipped (past the knee each step only costs the timeout)."""
        srv = self.make_server(name, mode)
        srv.start()
        out = []
        try:
            for rate in self.o.rates:
                calls = max(1, int(rate * self.o.duration))
                if self.o.smoke:
                    calls = self.o.smoke_calls
                res = self.step(srv, mode, rate, calls)
                out.append(res)
                if not res["alive"]:
                    srv.stop()
                    self.collect_log(srv)
                    srv = self.make_server(name, mode)
                    srv.start()
                if res["ok"] < calls / 2:
                    for r in self.o.rates[self.o.rates.index(rate) + 1:]:
                        out.append({"rate": r, "skipped": True})
                    break
        finally:
            srv.stop()
            self.collect_log(srv)
        return out

    def memory(self, name):
        """Hold `hold` INVITEs in Proceeding; shm and PSS growth per one."""
        srv = self.make_server(name, "relay")
        srv.start()
        try:
            time.sleep(0.5)
            shm0, pss0 = srv.shm_used(), procs.pss_kb(srv.pids())
            n = self.o.hold
            rate = self.o.hold_rate
            r = self.step(srv, "relay", rate, n, uac="hold_uac", uas="hold_uas", tag="-hold")
            shm1, pss1 = srv.shm_used(), procs.pss_kb(srv.pids())
            txn = srv.transactions()
        finally:
            srv.stop()
            self.collect_log(srv)
        held = r["ok"]
        res = {"held": held, "offered": n, "shm_before": shm0, "shm_after": shm1,
               "transactions": txn, "alive": r["alive"],
               "pss_kb_before": pss0, "pss_kb_after": pss1}
        if held and shm0 is not None and shm1 is not None:
            res["shm_per_txn"] = (shm1 - shm0) / held
        if held:
            res["pss_per_txn"] = (pss1 - pss0) * 1024 / held
        log(f"  {name}: {held} held, server says {txn} transactions, "
            f"shm {shm0} -> {shm1} ({res.get('shm_per_txn', 0):.0f} B each), "
            f"PSS {pss0} -> {pss1} kB")
        return res

    def overload(self, name, saturation, saturated):
        """One relay step at twice `saturation`: goodput in calls/s over the
        offering period, against the saturation rate."""
        rate = 2 * saturation
        srv = self.make_server(name, "relay")
        srv.start()
        try:
            r = self.step(srv, "relay", rate, int(rate * self.o.overload_duration), tag="-overload")
        finally:
            srv.stop()
            self.collect_log(srv)
        r["saturation"] = saturation
        r["saturated"] = saturated
        # calls completed while offering, per second of offering
        if r.get("offer_ok") is not None and r.get("offer_secs"):
            r["goodput"] = r["offer_ok"] / r["offer_secs"]
        else:
            r["goodput"] = r["ok"] / self.o.overload_duration
        r["goodput_pct"] = 100.0 * r["goodput"] / saturation
        return r


def saturated(steps):
    """Whether some step of the ladder lost calls (else the knee is above)."""
    return any(s.get("skipped") or s["failed"] > s["calls"] / 1000 for s in steps)


def knee(steps):
    """Highest offered rate that served at least 99.9 % of its calls: the
    saturation point the overload step doubles. Stricter "0 failed" would
    let one reordered 180 at a low rate pass for saturation."""
    good = [s["rate"] for s in steps if not s.get("skipped") and s["failed"] <= s["calls"] / 1000]
    return max(good) if good else None


def max_sustained(steps, clean=False):
    """Highest offered rate whose step lost no call (`clean`: and saw no
    retransmission either, the stricter capacity of docs/testing.md)."""
    good = [s["rate"] for s in steps if not s.get("skipped") and s["failed"] == 0
            and not (clean and s["retrans"])]
    return max(good) if good else None
