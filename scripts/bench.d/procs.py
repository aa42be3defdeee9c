"""Processes the bench starts: each in its own session (so its process group
holds every child it forks), all killed on exit, CPU and memory read from
/proc. Nothing here knows about SIP."""
import atexit
import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Every group we started, so that any exit path (error, ^C, SIGTERM) kills
# them; a leftover server would skew the next run's CPU figures.
_LIVE = []
# File listing the process groups of a run in progress; a run that died
# without cleaning up is finished off by the next one.
_STATE = None


def _kill_all():
    for g in list(_LIVE):
        g.stop()
    if _STATE and os.path.exists(_STATE):
        os.unlink(_STATE)


def _on_signal(signum, _frame):
    _kill_all()
    raise SystemExit(128 + signum)


def install_cleanup(state_file, marker):
    """Kill what a previous, crashed run left (process groups recorded in
    `state_file` whose command line still contains `marker`), then arrange
    for our own groups to be killed however we exit."""
    global _STATE
    _STATE = state_file
    if os.path.exists(state_file):
        with open(state_file) as f:
            for line in f:
                pg = line.strip()
                if pg.isdigit():
                    pg = int(pg)
                    try:
                        with open(f"/proc/{pg}/cmdline", "rb") as c:
                            if marker.encode() in c.read():
                                os.killpg(pg, signal.SIGKILL)
                    except (OSError, ProcessLookupError):
                        pass
        os.unlink(state_file)
    atexit.register(_kill_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


def _record():
    if _STATE:
        with open(_STATE, "w") as f:
            for g in _LIVE:
                f.write(f"{g.pgid}\n")


class Group:
    """A command run in a new session; `pgid` is its leader's pid."""

    def __init__(self, cmd, cwd, log_path, name, limit=900):
        """`limit`: seconds after which timeout(1) kills the command even if
        this script was itself killed without running its cleanup."""
        self.name = name
        cmd = ["timeout", "-k", "2", str(int(limit)), *cmd]
        self.cmd = cmd
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.proc.pid
        _LIVE.append(self)
        _record()

    def alive(self):
        return self.proc.poll() is None

    def pids(self):
        """Every live process in the group (a daemon-style double fork
        keeps the group), plus any descendant that left it."""
        return group_pids(self.pgid)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=3.0):
        """SIGTERM the group, SIGKILL whatever is left after `grace` s."""
        if self not in _LIVE:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            end = time.time() + grace
            while time.time() < end and group_pids(self.pgid):
                time.sleep(0.05)
                self.proc.poll()
            if not group_pids(self.pgid):
                break
        self.proc.poll()
        self.log.close()
        _LIVE.remove(self)
        _record()


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    # comm may hold spaces and parentheses: split after the last ')'.
    rest = s[s.rindex(")") + 2:].split()
    return rest  # rest[0] is field 3 (state)


def group_pids(pgid):
    pids = []
    parents = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            f = _stat_fields(d)
        except (OSError, ValueError):
            continue
        if f[0] == "Z":
            continue
        parents[int(d)] = int(f[1])
        if int(f[2]) == pgid:
            pids.append(int(d))
    # descendants that called setsid/setpgid still belong to the server
    found = set(pids)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return sorted(found)


def cpu_us(pids):
    """utime+stime (fields 14, 15 of /proc/PID/stat) summed, in µs."""
    total = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
        except (OSError, ValueError):
            continue
        total += int(f[11]) + int(f[12])
    return total * 1_000_000 // CLK_TCK


def pss_kb(pids):
    """Proportional set size summed: shared memory counted once overall,
    unlike an RSS sum that counts it once per process."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def free_ports(n):
    """`n` distinct ports free on 127.0.0.1 right now for both UDP and TCP
    (a server listens on both at one port; held open together so they
    differ, then released)."""
    socks, ports = [], []
    while len(ports) < n:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        socks.append(u)
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socks.append(t)
        try:
            t.bind(("127.0.0.1", port))
        except OSError:
            continue
        ports.append(port)
    for s in socks:
        s.close()
    return ports


def _bound(paths, port, state=None):
    """Whether a socket in /proc/net/`paths` has local `port` (and, for
    TCP, the given state: 0A is LISTEN)."""
    hexport = f":{port:04X}"
    for path in paths:
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(hexport) and (state is None or cols[3] == state):
                        return True
        except OSError:
            continue
    return False


def udp_bound(port):
    """Whether something listens on UDP `port` (any address)."""
    return _bound(("/proc/net/udp", "/proc/net/udp6"), port)


def tcp_listening(port):
    """Whether something listens on TCP `port` (any address)."""
    return _bound(("/proc/net/tcp", "/proc/net/tcp6"), port, "0A")


def bound(port, transport):
    """`udp_bound` or `tcp_listening` by `transport` ("udp", or "tcp" and
    "tls", which listen on TCP)."""
    return tcp_listening(port) if transport in ("tcp", "tls") else udp_bound(port)


CGROUP_V1 = "/sys/fs/cgroup/cpu"
CGROUP_V2 = "/sys/fs/cgroup"


def cpu_cap_prefix(name, fraction):
    """A command prefix that runs the server inside a CPU-capped cgroup
    (`fraction` of one core), so the server, not sipp, is what saturates
    when both share one small machine. Works with cgroup v1 (cpu
    controller) or v2 (cpu.max); raises OSError when neither is writable."""
    period = 100000
    quota = max(1000, int(fraction * period))
    if os.path.isfile(os.path.join(CGROUP_V1, "cpu.cfs_quota_us")):
        d = os.path.join(CGROUP_V1, f"ser-bench-{name}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
            f.write(str(period))
        with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(quota))
    else:
        d = os.path.join(CGROUP_V2, f"ser-bench-{name}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "cpu.max"), "w") as f:
            f.write(f"{quota} {period}")
    atexit.register(_remove_cgroup, d)
    procs_file = os.path.join(d, "cgroup.procs")
    # The shell joins the cgroup, then becomes the server: every process
    # the server forks inherits the cap.
    return ["sh", "-c", f'echo $$ > {procs_file} && exec "$@"', "sh"]


def _remove_cgroup(d):
    """Best effort at exit: an empty cgroup directory can be removed."""
    try:
        os.rmdir(d)
    except OSError:
        pass
