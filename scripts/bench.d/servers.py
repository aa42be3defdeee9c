"""The two servers under test: equivalent configs (same listen address,
UDP workers, shm size, errors-only logging, same modules doing the same
work), how to start them in the foreground, and their own shm figures."""
import glob
import os
import re
import subprocess
import time

import procs

# Every mode: (kind, caller transport, callee transport). The kind picks
# the route block below and the sipp scenarios (run.SCENARIOS). The caller
# leg is sipp UAC -> server, the callee leg server -> sipp UAS and the
# servers' relay (t_relay_to_<callee>). The servers listen on UDP in every
# mode, and on TCP or TLS at the same port number too when the caller's
# transport is one of those. A TLS caller is sipp over plain TCP to a
# stunnel client (stunnel.py), which opens the TLS connection to the
# server: Debian's sipp has no TLS.
MODES = {
    "relay": ("relay", "udp", "udp"),
    "relay-tcp": ("relay", "tcp", "tcp"),
    "relay-tls": ("relay", "tls", "udp"),
    "stateless": ("stateless", "udp", "udp"),
    "uas": ("uas", "udp", "udp"),
    "register-auth": ("register-auth", "udp", "udp"),
    "call-auth": ("call-auth", "udp", "udp"),
}

# Modes that need what a stock machine may lack (here Kamailio's
# db_sqlite.so), so they are run only when asked for with --modes.
OPTIONAL_MODES = ("register-auth", "call-auth")

# Kinds whose requests are authenticated against the SQLite subscribers
# (authdb.py): each server gets its db_file and sipp the credentials.
AUTH_KINDS = ("register-auth", "call-auth")


def auth_modes(modes):
    """Those of `modes` that need the subscriber databases."""
    return [m for m in modes if kind(m) in AUTH_KINDS]


def kind(mode):
    return MODES[mode][0]


def caller_transport(mode):
    return MODES[mode][1]


def callee_transport(mode):
    return MODES[mode][2]


# Route blocks per kind. {uas} is the port of the sipp UAS behind the proxy,
# {proto} the mode's callee transport. No record-route except in call-auth:
# the built-in sipp scenarios send ACK/BYE to the proxy with the UAS as
# R-URI-less target, so every request is relayed the same.
#
# call-auth is the classic ser.cfg's call path: a request with a route
# set (the ACK for the 200, the BYE) is loose-routed and relayed without
# auth; an INVITE must carry Proxy-Authorization for a subscriber, else
# it gets a 407 challenge (sent statelessly by both servers' sl, whose
# ACK filter then absorbs the ACK for it before the script); with it, it
# is record-routed and relayed statefully to the UAS (the R-URI's domain
# stands for "the callee's registered contact", so the host part is
# rewritten to the UAS rather than looked up).
SER_ROUTE = {
    "relay": 'if (!t_relay_to_{proto}("127.0.0.1", "{uas}")) {{ sl_reply_error(); }};',
    "stateless": 'forward("127.0.0.1", {uas});',
    "uas": 'if (method == "OPTIONS") {{ t_newtran(); t_reply("200", "OK"); }};',
    "register-auth": 'if (method == "REGISTER") {{ '
                     'if (!www_authorize("example.com", "subscriber")) {{ '
                     'www_challenge("example.com", "0"); break; }}; '
                     'save("location"); break; }};',
    "call-auth": """if (loose_route()) {{ if (!t_relay()) {{ sl_reply_error(); }}; break; }};
	if (method == "INVITE") {{
		if (!proxy_authorize("example.com", "subscriber")) {{
			proxy_challenge("example.com", "0"); break;
		}};
		consume_credentials();
		record_route();
		rewritehostport("127.0.0.1:{uas}");
		if (!t_relay()) {{ sl_reply_error(); }};
		break;
	}};""",
}
KAM_ROUTE = {
    "relay": 'if (!t_relay_to_{proto}("127.0.0.1", "{uas}")) {{ sl_reply_error(); }}',
    "stateless": 'forward("127.0.0.1", {uas});',
    "uas": 'if (method == "OPTIONS") {{ t_newtran(); t_reply("200", "OK"); }}',
    "register-auth": 'if (method == "REGISTER") {{ '
                     'if (!www_authorize("example.com", "subscriber")) {{ '
                     'www_challenge("example.com", "0"); exit; }} '
                     'save("location"); exit; }}',
    "call-auth": """if (loose_route()) {{ if (!t_relay()) {{ sl_reply_error(); }} exit; }}
	if (method == "INVITE") {{
		if (!proxy_authorize("example.com", "subscriber")) {{
			proxy_challenge("example.com", "0"); exit;
		}}
		consume_credentials();
		record_route();
		rewritehostport("127.0.0.1:{uas}");
		if (!t_relay()) {{ sl_reply_error(); }}
		exit;
	}}""",
}

# The modules each kind loads after the common ones (same names for both
# servers: ser loads them from SER's path, Kamailio by name from mpath),
# and their parameters, which read the same on both.
#
# The auth kinds check digest credentials against a SQLite `subscriber`
# table holding plain passwords (calculate_ha1 on, so each authenticated
# request costs one row lookup and the HA1 MD5 on both), qop off ("0").
# {db} is the server's own SQLite file (authdb.py): SER 0.9's schema for
# ser, Kamailio 5.6's for Kamailio, same users and passwords.
# register-auth keeps the location in memory only (usrloc db_mode 0).
AUTH_MODULES = ["db_sqlite", "auth", "auth_db"]
AUTH_PARAMS = """modparam("auth_db", "db_url", "sqlite://{db}")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
"""
MODULES = {
    "register-auth": (AUTH_MODULES + ["usrloc", "registrar"],
                      AUTH_PARAMS + 'modparam("usrloc", "db_mode", 0)\n'),
    "call-auth": (AUTH_MODULES + ["rr"], AUTH_PARAMS),
}


def kamailio_sqlite_module():
    """Whether Kamailio's db_sqlite.so (package kamailio-sqlite-modules) is there."""
    d = kamailio_modules()
    return d is not None and os.path.exists(os.path.join(d, "db_sqlite.so"))


class ServerError(Exception):
    pass


class Server:
    """One server instance for one mode; `start()` returns once it answers
    its control channel and its workers have settled."""

    name = "?"

    def __init__(self, workdir, port, uas_port, mode, children, shm_mb):
        self.dir = workdir
        self.port = port
        self.uas_port = uas_port
        self.mode = mode
        self.children = children
        self.shm_mb = shm_mb
        self.group = None
        # Fraction of one core the server may use (None: no cap).
        self.cpu_cap = None
        # (certificate, private key) PEM files for a TLS listener
        self.tls_files = None
        # SQLite file with the subscribers (AUTH_KINDS)
        self.db_file = None
        os.makedirs(workdir, exist_ok=True)

    @property
    def transport(self):
        """What the server listens on besides UDP: the caller's transport."""
        return caller_transport(self.mode)

    def route(self, table):
        return table[kind(self.mode)].format(uas=self.uas_port, proto=callee_transport(self.mode))

    def modules(self):
        """The mode's own modules (MODULES) and parameters, after the
        common ones."""
        names, params = MODULES.get(kind(self.mode), ([], ""))
        return ("".join(f'loadmodule "{self.module_path.format(n)}"\n' for n in names)
                + params.format(db=self.db_file))

    def start(self):
        cfg = os.path.join(self.dir, f"{self.name}.cfg")
        with open(cfg, "w") as f:
            f.write(self.config())
        cmd = self.command(cfg)
        if self.cpu_cap:
            cmd = procs.cpu_cap_prefix(self.name, self.cpu_cap) + cmd
        self.group = procs.Group(cmd, self.dir,
                                 os.path.join(self.dir, f"{self.name}.log"), self.name)
        end = time.time() + 20
        while time.time() < end:
            if not self.group.alive():
                raise ServerError(f"{self.name} exited at start; see {self.group.log.name}")
            if (procs.udp_bound(self.port) and procs.bound(self.port, self.transport)
                    and self.shm_used() is not None):
                break
            time.sleep(0.2)
        else:
            raise ServerError(f"{self.name} not ready after 20 s; see {self.group.log.name}")
        # workers fork after the socket is bound: wait until the count holds
        last, stable = -1, 0
        while stable < 4 and time.time() < end:
            n = len(self.group.pids())
            stable = stable + 1 if n == last else 0
            last = n
            time.sleep(0.25)

    def stop(self):
        if self.group:
            self.group.stop()

    def alive(self):
        return self.group is not None and self.group.alive()

    def pids(self):
        return self.group.pids() if self.group else []

    def _ctl(self, argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout if r.returncode == 0 else None


class Ser(Server):
    name = "ser"
    module_path = "/usr/local/lib/ser/modules/{}.so"

    def __init__(self, binary, serctl, *a):
        self.binary = binary
        self.serctl = serctl
        super().__init__(*a)
        self.fifo = os.path.join(self.dir, "ser_fifo")

    def config(self):
        if self.transport == "tcp":
            tcp = f"listen=tcp:127.0.0.1:{self.port}\ntcp_children={self.children}\n"
        elif self.transport == "tls":
            cert, key = self.tls_files
            tcp = (f"listen=tls:127.0.0.1:{self.port}\ntcp_children={self.children}\n"
                   f"enable_tls=yes\n"
                   f'tls_certificate="{cert}"\ntls_private_key="{key}"\n'
                   # no client certificate asked for (SER's default, said
                   # explicitly); tls_method left at sslv23, which is TLS 1.2
                   # or 1.3 in ser, as Kamailio's TLSv1.2+ below
                   f"tls_verify_client=0\ntls_require_certificate=0\n")
        else:
            tcp = ""
        return f"""# generated by scripts/bench ({self.mode})
debug=0
log_stderror=yes
listen=udp:127.0.0.1:{self.port}
{tcp}children={self.children}
check_via=no
dns=no
rev_dns=no
sip_warning=no
fifo="{self.fifo}"
loadmodule "/usr/local/lib/ser/modules/sl.so"
loadmodule "/usr/local/lib/ser/modules/tm.so"
modparam("tm", "fr_timer", 30)
modparam("tm", "fr_inv_timer", 120)
{self.modules()}route {{
	{self.route(SER_ROUTE)}
}}
"""

    def command(self, cfg):
        return [self.binary, "-f", cfg, "-DD", "-E", "-m", str(self.shm_mb),
                "-P", os.path.join(self.dir, "ser.pid")]

    def shm_used(self):
        out = self._ctl([self.serctl, "-t", "5", "-f", self.fifo, "fifo", "meminfo"])
        m = re.search(r"^\s*used:\s*(\d+)", out or "", re.M)
        return int(m.group(1)) if m else None

    def transactions(self):
        out = self._ctl([self.serctl, "-t", "5", "-f", self.fifo, "stats"])
        m = re.search(r"Current:\s*(\d+)", out or "")
        return int(m.group(1)) if m else None


def kamailio_tls_module():
    """Whether Kamailio's tls.so (package kamailio-tls-modules) is there."""
    d = kamailio_modules()
    return d is not None and os.path.exists(os.path.join(d, "tls.so"))


def kamailio_modules():
    for d in sorted(glob.glob("/usr/lib/*/kamailio/modules")) + ["/usr/lib/kamailio/modules"]:
        if os.path.exists(os.path.join(d, "tm.so")):
            return d
    return None


class Kamailio(Server):
    name = "kamailio"
    module_path = "{}.so"  # found in mpath

    def __init__(self, *a):
        super().__init__(*a)
        self.ctl = os.path.join(self.dir, "kamailio_ctl")
        self.mpath = kamailio_modules()

    def config(self):
        tls = ""
        if self.transport == "tcp":
            tcp = (f"listen=tcp:127.0.0.1:{self.port}\ndisable_tcp=no\n"
                   f"tcp_children={self.children}\n")
        elif self.transport == "tls":
            cert, key = self.tls_files
            tcp = (f"listen=tls:127.0.0.1:{self.port}\ndisable_tcp=no\nenable_tls=yes\n"
                   f"tcp_children={self.children}\n")
            # No tls.cfg: the module parameters make the one default domain;
            # no client certificate asked for or required, like ser's.
            tls = f"""loadmodule "tls.so"
modparam("tls", "certificate", "{cert}")
modparam("tls", "private_key", "{key}")
modparam("tls", "tls_method", "TLSv1.2+")
modparam("tls", "verify_certificate", 0)
modparam("tls", "require_certificate", 0)
"""
        else:
            tcp = "disable_tcp=yes\n"
        return f"""#!KAMAILIO
# generated by scripts/bench ({self.mode})
debug=-1
log_stderror=yes
memdbg=5
memlog=5
children={self.children}
listen=udp:127.0.0.1:{self.port}
{tcp}auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=no
sip_warning=0
mpath="{self.mpath}"
{tls}loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "ctl.so"
modparam("ctl", "binrpc", "unix:{self.ctl}")
modparam("tm", "fr_timer", 30000)
modparam("tm", "fr_inv_timer", 120000)
{self.modules()}request_route {{
	{self.route(KAM_ROUTE)}
	exit;
}}
"""

    def command(self, cfg):
        return ["kamailio", "-f", cfg, "-DD", "-E", "-m", str(self.shm_mb), "-M", "8",
                "-P", os.path.join(self.dir, "kamailio.pid"), "-Y", self.dir]

    def shm_used(self):
        out = self._ctl(["kamcmd", "-s", f"unix:{self.ctl}", "core.shmmem"])
        # real_used counts allocator headers, like ser's meminfo "used"
        m = re.search(r"real_used:\s*(\d+)", out or "")
        return int(m.group(1)) if m else None

    def transactions(self):
        out = self._ctl(["kamcmd", "-s", f"unix:{self.ctl}", "tm.stats"])
        m = re.search(r"current:\s*(\d+)", out or "")
        return int(m.group(1)) if m else None
