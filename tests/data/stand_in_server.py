# Stand-in for the ser binary, used only by tests/harness.rs to check the
# launcher (port wait, child discovery, SIGTERM stop, pid file, early-death
# report) while the real server is not yet able to run.
# usage: stand_in_server.py PORT PIDFILE [die|stubborn]
import os, signal, socket, sys, time

port, pidfile = int(sys.argv[1]), sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "normal"
if mode == "die":
    sys.stderr.write("stand-in: refusing to start\n")
    sys.exit(3)

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", port))
kids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        if mode == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    kids.append(pid)

def stop(_sig, _frame):
    for k in kids:
        os.kill(k, signal.SIGTERM)
    for k in kids:
        os.waitpid(k, 0)
    os.unlink(pidfile)
    sys.exit(0)

if mode != "stubborn":
    signal.signal(signal.SIGTERM, stop)
else:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(pidfile, "w") as f:
    f.write("%d\n" % os.getpid())
sys.stderr.write("stand-in: listening on %d\n" % port)
sys.stderr.flush()
while True:
    time.sleep(1)
