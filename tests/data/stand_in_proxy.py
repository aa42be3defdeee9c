#!/usr/bin/python3
# Minimal stateless SIP proxy standing in for `ser`, used ONLY to check the
# black-box tests themselves before the real server runs:
#   SER_TEST_BIN=tests/data/stand_in_proxy.py cargo test --release --test foundation
# It understands just the configs tests/foundation.rs writes (listen,
# children, forward("127.0.0.1", N)); `-c` always succeeds, so the config
# tests are expected to fail against it.
import os, re, signal, socket, sys, time

args = sys.argv[1:]
if "-c" in args:
    sys.exit(0)
cfg_path = args[args.index("-f") + 1]
pid_file = args[args.index("-P") + 1] if "-P" in args else None
cfg = open(cfg_path).read()
port = int(re.search(r"listen=udp:127\.0\.0\.1:(\d+)", cfg).group(1))
children = int(re.search(r"children=(\d+)", cfg).group(1))
nxt = int(re.search(r'forward\("127\.0\.0\.1", (\d+)\)', cfg).group(1))

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", port))
MANDATORY = ("via", "from", "to", "call-id", "cseq")
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "l": "content-length"}


def split(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    hdrs = []
    for l in lines[1:]:
        if ":" not in l:
            return None
        n, v = l.split(":", 1)
        n = n.strip().lower()
        hdrs.append((COMPACT.get(n, n), v.strip(), l))
    return lines[0], hdrs, body


def get(hdrs, name):
    return [v for n, v, _ in hdrs if n == name]


def reply(first, hdrs, code, reason, src):
    out = "SIP/2.0 %d %s\r\n" % (code, reason)
    for n, v, raw in hdrs:
        if n in ("via", "from", "call-id", "cseq"):
            out += raw + "\r\n"
        elif n == "to":
            out += raw + ("" if ";tag=" in v else ";tag=standin") + "\r\n"
    out += "Content-Length: 0\r\n\r\n"
    sock.sendto(out.encode("latin-1"), src)


def via_target(v):
    m = re.match(r"SIP/2\.0/UDP\s+([^;:\s]+)(?::(\d+))?", v)
    host, vport = m.group(1), int(m.group(2) or 5060)
    rec = re.search(r";received=([^;]+)", v)
    rp = re.search(r";rport=(\d+)", v)
    return (rec.group(1) if rec else host, int(rp.group(1)) if rp else vport)


def handle(data, src):
    p = split(data)
    if p is None:
        return
    first, hdrs, body = p
    if first.startswith("SIP/2.0 "):
        # sipp's [last_Via:] puts every Via into one comma-separated line.
        vias = [x.strip() for v in get(hdrs, "via") for x in v.split(",")]
        if len(vias) < 2:
            return
        out, dropped = [], False
        for n, v, raw in hdrs:
            if n == "via" and not dropped:
                dropped = True
                rest = [x.strip() for x in v.split(",")][1:]
                if rest:
                    out.append("Via: " + ", ".join(rest))
                continue
            out.append(raw)
        msg = (first + "\r\n" + "\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body
        host, vport = via_target(vias[1])
        if host == "127.0.0.1":
            sock.sendto(msg, (host, vport))
        return
    parts = first.split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or not get(hdrs, "via"):
        return
    missing = [m for m in MANDATORY if not get(hdrs, m)]
    cseq = get(hdrs, "cseq")
    bad = bool(missing)
    if cseq:
        m = re.fullmatch(r"(\d+)\s+(\S+)", cseq[0])
        bad = bad or not m or int(m.group(1)) > 0xFFFFFFFF or m.group(2) != parts[0]
    if bad:
        reply(first, hdrs, 400, "Bad Request", src)
        return
    if parts[0] == "OPTIONS":
        reply(first, hdrs, 200, "OK", src)
        return
    out, first_via = [], True
    for n, v, raw in hdrs:
        if n == "via" and first_via:
            first_via = False
            host = re.match(r"SIP/2\.0/UDP\s+([^;:\s]+)", v)
            if host and host.group(1) != src[0]:
                raw += ";received=" + src[0]
            if re.search(r";rport(;|$)", raw):
                raw = re.sub(r";rport(;|$)", r";rport=%d\1" % src[1], raw)
        out.append(raw)
    via = "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=0" % port
    msg = (first + "\r\n" + via + "\r\n" + "\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body
    sock.sendto(msg, ("127.0.0.1", nxt))


kids = []
for _ in range(children):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            data, src = sock.recvfrom(65536)
            try:
                handle(data, src)
            except Exception as e:  # a stand-in must not die on bad input either
                sys.stderr.write("stand-in: %r\n" % e)
    kids.append(pid)


def stop(_s, _f):
    for k in kids:
        os.kill(k, signal.SIGTERM)
    for k in kids:
        os.waitpid(k, 0)
    if pid_file:
        os.unlink(pid_file)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
if pid_file:
    open(pid_file, "w").write("%d\n" % os.getpid())
while True:
    time.sleep(1)
