//! Core global parameters (`name = value` at the top of ser.cfg).
//!
//! Every name SER 0.9 knows is accepted; 2.x names are accepted too. Names
//! that only matter to features this server does not have (TLS knobs, DNS
//! cache tuning) are recorded in [`CoreCfg::ignored`] and reported once at
//! start-up, so a classic config loads unchanged. An unknown name is an
//! error, as in SER.

use crate::cfg::ast::{GlobalValue, SocketSpec};

/// SER's maximum message size (`max_len`).
pub const MAX_LEN: i64 = 65535;

#[derive(Debug, Clone)]
pub struct CoreCfg {
    pub debug: i32,
    pub fork: bool,
    pub log_stderror: bool,
    /// Checked at load: one of the names `os::syslog` knows.
    pub log_facility: String,
    /// `log_name`: the syslog ident (the tag before `[pid]`), `ser` unless
    /// set; lets two servers on one host be told apart in the log.
    pub log_name: String,
    pub listen: Vec<SocketSpec>,
    pub alias: Vec<SocketSpec>,
    pub port: u16,
    pub children: u32,
    pub check_via: bool,
    pub dns: bool,
    pub rev_dns: bool,
    pub syn_branch: bool,
    pub memlog: i64,
    pub sip_warning: bool,
    pub server_signature: bool,
    pub reply_to_via: bool,
    pub maxbuffer: u32,
    pub mhomed: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    pub chroot: Option<String>,
    pub workdir: Option<String>,
    pub fifo: Option<String>,
    pub fifo_dir: String,
    /// SER 0.9's one set of control-file permissions (`fifo_mode` =
    /// `sock_mode` = `file_mode`, `fifo_user` = `sock_user`, `fifo_group`
    /// = `sock_group`): the FIFO's, and the unix socket's unless the 2.x
    /// `unixsock` module sets its own. With no user given, the files
    /// belong to `user` (`-u`) so that ser's own user can manage it.
    pub fifo_mode: u32,
    pub fifo_user: Option<String>,
    pub fifo_group: Option<String>,
    pub fifo_db_url: Option<String>,
    pub unix_sock: Option<String>,
    pub unix_sock_children: u32,
    /// Mode and owner of the unix socket file (2.x `unixsock` params);
    /// unset, the `fifo_*` values apply.
    pub unix_sock_mode: Option<u32>,
    pub unix_sock_user: Option<String>,
    pub unix_sock_group: Option<String>,
    /// Milliseconds.
    pub unix_tx_timeout_ms: u32,
    /// JSON-RPC over a unix stream socket (`jsonrpc_socket=`); its mode
    /// and owner are the unix socket's (`unix_sock_*`, else `fifo_*`).
    pub jsonrpc_socket: Option<String>,
    /// JSON-RPC over TCP (`jsonrpc_listen=`): loopback only, since the
    /// protocol has no authentication.
    pub jsonrpc_listen: Option<std::net::SocketAddr>,
    pub disable_tcp: bool,
    pub tcp_children: Option<u32>,
    pub tcp_accept_aliases: bool,
    pub tcp_connect_timeout: u32,
    pub tcp_send_timeout: u32,
    /// Most connections open at once (SER's default 2048); past it the
    /// one idle the longest is closed.
    pub tcp_max_connections: u32,
    /// Seconds a connection may stay idle (SER's default 120).
    pub tcp_connection_lifetime: u32,
    /// Seconds a started message may take to arrive whole before its
    /// connection is closed (slowloris; Kamailio's name, default 20).
    pub tcp_msg_read_timeout: u32,
    /// `enable_tls` (2.x) / `disable_tls` (0.9): whether a bare listen
    /// address also opens TLS; an explicit `tls:` entry needs no switch.
    pub enable_tls: bool,
    /// `tls_port_no`: the port of `tls:` entries that name none (5061).
    pub tls_port_no: u16,
    /// The `tls_*` settings: certificates, verification, method, timeouts.
    pub tls: crate::net::tls::TlsSettings,
    pub advertised_address: Option<String>,
    pub advertised_port: Option<u16>,
    pub disable_core_dump: bool,
    pub open_files_limit: i64,
    pub mcast_loopback: bool,
    pub mcast_ttl: i64,
    pub statistics: Option<String>,
    /// Shared memory size in MB (command line `-m`).
    pub shm_mb: u32,
    /// SER 2.1's destination blacklist (`net::blacklist`): off by default.
    /// SER 2.x's `use_dns_cache` (on by default there too).
    pub use_dns_cache: bool,
    /// `dns_cache_mem`, KB of shared memory for it.
    pub dns_cache_mem: u32,
    /// Resolver settings: `dns_try_ipv6`, `dns_try_naptr`, `dns_srv_lb`,
    /// `dns_cache_negative_ttl`, `dns_cache_min_ttl`, `dns_cache_max_ttl`.
    pub dns_settings: crate::net::dns::Settings,
    pub use_dst_blacklist: bool,
    /// Seconds a destination stays blacklisted after a timeout or a send
    /// failure (SER 2.1: 60).
    pub dst_blacklist_expire: u32,
    /// KB of shared memory for the table (SER 2.1: 250), which fixes how
    /// many destinations it holds.
    pub dst_blacklist_mem: u32,
    /// `metrics_listen`: where the Prometheus endpoint listens (TCP, an
    /// IP address and a port); `None` = no endpoint, no process.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Recognised names with no effect here, for a start-up notice.
    pub ignored: Vec<String>,
}

impl Default for CoreCfg {
    fn default() -> Self {
        CoreCfg {
            debug: 2,
            fork: true,
            log_stderror: false,
            log_facility: "LOG_DAEMON".into(),
            log_name: "ser".into(),
            listen: Vec::new(),
            alias: Vec::new(),
            port: 5060,
            children: 8,
            check_via: false,
            dns: false,
            rev_dns: false,
            syn_branch: true,
            memlog: 4,
            sip_warning: true,
            server_signature: true,
            reply_to_via: false,
            maxbuffer: 256 * 1024,
            mhomed: false,
            user: None,
            group: None,
            chroot: None,
            workdir: None,
            fifo: None,
            fifo_dir: "/tmp/".into(),
            fifo_mode: 0o660,
            fifo_user: None,
            fifo_group: None,
            fifo_db_url: None,
            unix_sock: None,
            unix_sock_children: 1,
            unix_sock_mode: None,
            unix_sock_user: None,
            unix_sock_group: None,
            unix_tx_timeout_ms: 2000,
            jsonrpc_socket: None,
            jsonrpc_listen: None,
            disable_tcp: false,
            tcp_children: None,
            tcp_accept_aliases: false,
            tcp_connect_timeout: 10,
            tcp_send_timeout: 10,
            tcp_max_connections: 2048,
            tcp_connection_lifetime: 120,
            tcp_msg_read_timeout: 20,
            enable_tls: false,
            tls_port_no: crate::net::DEFAULT_TLS_PORT,
            tls: crate::net::tls::TlsSettings::default(),
            advertised_address: None,
            advertised_port: None,
            disable_core_dump: false,
            open_files_limit: -1,
            mcast_loopback: false,
            mcast_ttl: -1,
            statistics: None,
            shm_mb: 32,
            use_dns_cache: true,
            dns_cache_mem: 500,
            dns_settings: crate::net::dns::Settings::default(),
            use_dst_blacklist: false,
            dst_blacklist_expire: 60,
            dst_blacklist_mem: 250,
            metrics_listen: None,
            ignored: Vec::new(),
        }
    }
}

/// Why a global parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobalError {
    #[error("unknown global parameter {0:?}")]
    Unknown(String),
    #[error("parameter {name:?} expects {expected}")]
    BadType {
        name: String,
        expected: &'static str,
    },
    #[error("parameter {name:?}: {reason}")]
    Tls { name: String, reason: String },
    #[error("parameter {name:?}: {reason}")]
    Unsupported { name: String, reason: &'static str },
    #[error("parameter {name:?}: {value:?} is not {expected}")]
    BadValue {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("parameter \"metrics_listen\": {value:?} {reason}")]
    MetricsListen { value: String, reason: &'static str },
    #[error("parameter {name:?}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("parameter {name:?}: value {value} out of range ({expected})")]
    Range {
        name: String,
        value: i64,
        expected: &'static str,
    },
}

/// 2.x and build-option names accepted without effect.
const IGNORED: &[&str] = &[
    // SER 0.9's TLS debug level: rustls logs through `log` at ser's own
    // `debug=` level instead.
    "tlslog",
    "phone2tel",
    "server_id",
    "description",
    "exit_timeout",
    "tos",
    "pmtu_discovery",
    "mlock_pages",
    "shm_force_alloc",
    "real_time",
    "rt_prio",
    "rt_policy",
    "rt_timer1_prio",
    "rt_timer1_policy",
    "rt_timer2_prio",
    "rt_timer2_policy",
    "dns_retr_time",
    "dns_retr_no",
    "dns_servers_no",
    "dns_use_search_list",
    "dns_search_full_match",
    "dns_cache_flags",
    "dns_cache_gc_interval",
    "dns_cache_del_nonexp",
    // Expired blacklist entries are reclaimed when met (`net::blacklist`):
    // there is no sweep whose interval this would set.
    "dst_blacklist_gc_interval",
    "tcp_poll_method",
    "tcp_source_ipv4",
    "tcp_source_ipv6",
    "stun_refresh_interval",
    "stun_allow_stun",
    "stun_allow_fp",
];

fn int(name: &str, v: &GlobalValue) -> Result<i64, GlobalError> {
    match v {
        GlobalValue::Int(n) => Ok(*n),
        _ => Err(GlobalError::BadType {
            name: name.into(),
            expected: "a number or yes/no",
        }),
    }
}

fn boolean(name: &str, v: &GlobalValue) -> Result<bool, GlobalError> {
    int(name, v).map(|n| n != 0)
}

/// A strict yes/no (1/0): `use_dst_blacklist=2` is more likely a slip
/// than a wish, and nothing else reads as a switch.
fn yes_no(name: &str, v: &GlobalValue) -> Result<bool, GlobalError> {
    Ok(ranged(name, v, 0, 1, "yes or no")? == 1)
}

fn ranged(
    name: &str,
    v: &GlobalValue,
    lo: i64,
    hi: i64,
    expected: &'static str,
) -> Result<i64, GlobalError> {
    let n = int(name, v)?;
    if n < lo || n > hi {
        return Err(GlobalError::Range {
            name: name.into(),
            value: n,
            expected,
        });
    }
    Ok(n)
}

fn string(name: &str, v: &GlobalValue) -> Result<String, GlobalError> {
    match v {
        GlobalValue::Str(s) | GlobalValue::Ident(s) => Ok(s.clone()),
        GlobalValue::Int(n) => Ok(n.to_string()),
        GlobalValue::Sockets(_) => Err(GlobalError::BadType {
            name: name.into(),
            expected: "a string",
        }),
    }
}

/// `log_facility`: refused at load unless syslog knows the name, so a typo
/// is a config error with file:line, not a start-up failure.
fn facility(name: &str, v: &GlobalValue) -> Result<String, GlobalError> {
    let s = string(name, v)?;
    if crate::os::syslog::facility_from_name(&s).is_none() {
        return Err(GlobalError::BadValue {
            name: name.into(),
            value: s,
            expected: "a syslog facility: LOG_DAEMON, LOG_LOCAL0..LOG_LOCAL7, LOG_USER …",
        });
    }
    Ok(s)
}

/// Longest `log_name` taken: syslog daemons cut tags at 32 bytes or so,
/// and a longer one would be shown cut.
const LOG_NAME_MAX: usize = 32;

/// `log_name`: printable, no blanks (a blank would end the tag in the
/// syslog line), not empty, at most [`LOG_NAME_MAX`] bytes.
fn log_name(name: &str, v: &GlobalValue) -> Result<String, GlobalError> {
    let s = string(name, v)?;
    let ok = !s.is_empty() && s.len() <= LOG_NAME_MAX && s.bytes().all(|c| c.is_ascii_graphic());
    if !ok {
        return Err(GlobalError::BadValue {
            name: name.into(),
            value: s,
            expected: "1 to 32 printable characters without blanks",
        });
    }
    Ok(s)
}

/// `fifo=""` disables the FIFO.
fn opt_string(name: &str, v: &GlobalValue) -> Result<Option<String>, GlobalError> {
    string(name, v).map(|s| if s.is_empty() { None } else { Some(s) })
}

/// `metrics_listen`: `ip:port` or `[ipv6]:port`, a real port; `""` = off.
/// A name is refused: the endpoint is bound before anything resolves,
/// and an address that changes under it would be a surprise.
fn metrics_listen(v: &GlobalValue) -> Result<Option<std::net::SocketAddr>, GlobalError> {
    let text = string("metrics_listen", v)?;
    if text.is_empty() {
        return Ok(None);
    }
    let bad = |reason| GlobalError::MetricsListen {
        value: text.clone(),
        reason,
    };
    let addr: std::net::SocketAddr = text
        .parse()
        .map_err(|_| bad("is not an IP address and port (127.0.0.1:9090, [::1]:9090)"))?;
    if addr.port() == 0 {
        return Err(bad("needs a port other than 0"));
    }
    Ok(Some(addr))
}

/// `"127.0.0.1:5081"` / `"[::1]:5081"`; an empty string switches it off.
/// Anything but a loopback address is refused: JSON-RPC has no
/// authentication, so whoever reaches the port could run `kill`.
fn loopback_addr(name: &str, v: &GlobalValue) -> Result<Option<std::net::SocketAddr>, GlobalError> {
    let Some(s) = opt_string(name, v)? else {
        return Ok(None);
    };
    let invalid = |reason: String| GlobalError::Invalid {
        name: name.into(),
        reason,
    };
    let addr: std::net::SocketAddr = s.parse().map_err(|_| {
        invalid(format!(
            "{s:?} is not an address:port with a numeric address (e.g. \"127.0.0.1:5081\")"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(invalid(format!(
            "{addr} is not a loopback address; JSON-RPC has no authentication, \
             so it is served on 127.0.0.1 or ::1 only (use jsonrpc_socket= for local \
             access with file permissions)"
        )));
    }
    Ok(Some(addr))
}

fn sockets(name: &str, v: &GlobalValue) -> Result<Vec<SocketSpec>, GlobalError> {
    match v {
        GlobalValue::Sockets(s) => Ok(s.clone()),
        GlobalValue::Str(s) | GlobalValue::Ident(s) => Ok(vec![SocketSpec {
            proto: None,
            host: s.clone(),
            port: None,
        }]),
        GlobalValue::Int(_) => Err(GlobalError::BadType {
            name: name.into(),
            expected: "[proto:]address[:port]",
        }),
    }
}

impl CoreCfg {
    /// Apply one `name = value` line.
    pub fn set(&mut self, name: &str, v: &GlobalValue) -> Result<(), GlobalError> {
        match name {
            "debug" => self.debug = ranged(name, v, -10, 20, "-3..9")? as i32,
            "fork" => self.fork = boolean(name, v)?,
            "log_stderror" => self.log_stderror = boolean(name, v)?,
            "log_facility" => self.log_facility = facility(name, v)?,
            "log_name" => self.log_name = log_name(name, v)?,
            "listen" => self.listen.extend(sockets(name, v)?),
            "alias" => self.alias.extend(sockets(name, v)?),
            "port" => self.port = ranged(name, v, 1, 65535, "1..65535")? as u16,
            "children" => self.children = ranged(name, v, 1, 1024, "1..1024")? as u32,
            "check_via" => self.check_via = boolean(name, v)?,
            "dns" => self.dns = boolean(name, v)?,
            "rev_dns" => self.rev_dns = boolean(name, v)?,
            "syn_branch" => self.syn_branch = boolean(name, v)?,
            "memlog" | "mem_log" => self.memlog = int(name, v)?,
            "sip_warning" => self.sip_warning = boolean(name, v)?,
            "server_signature" => self.server_signature = boolean(name, v)?,
            "reply_to_via" => self.reply_to_via = boolean(name, v)?,
            "maxbuffer" => self.maxbuffer = ranged(name, v, 1, 1 << 30, "a size in bytes")? as u32,
            "mhomed" => self.mhomed = boolean(name, v)?,
            "user" | "uid" => self.user = Some(string(name, v)?),
            "group" | "gid" => self.group = Some(string(name, v)?),
            "chroot" => self.chroot = Some(string(name, v)?),
            "workdir" | "wdir" => self.workdir = Some(string(name, v)?),
            "fifo" => self.fifo = opt_string(name, v)?,
            "fifo_dir" => self.fifo_dir = string(name, v)?,
            "fifo_mode" | "sock_mode" | "file_mode" => {
                self.fifo_mode = ranged(name, v, 0, 0o7777, "a file mode")? as u32
            }
            "fifo_user" | "sock_user" => self.fifo_user = Some(string(name, v)?),
            "fifo_group" | "sock_group" => self.fifo_group = Some(string(name, v)?),
            "fifo_db_url" => self.fifo_db_url = Some(string(name, v)?),
            "unix_sock" => self.unix_sock = opt_string(name, v)?,
            "unix_sock_children" => {
                self.unix_sock_children = ranged(name, v, 1, 64, "1..64")? as u32
            }
            "unix_tx_timeout" => {
                self.unix_tx_timeout_ms = ranged(name, v, 0, 600_000, "milliseconds")? as u32
            }
            "jsonrpc_socket" => self.jsonrpc_socket = opt_string(name, v)?,
            "jsonrpc_listen" => self.jsonrpc_listen = loopback_addr(name, v)?,
            "disable_tcp" => self.disable_tcp = boolean(name, v)?,
            "tcp_children" => self.tcp_children = Some(ranged(name, v, 1, 1024, "1..1024")? as u32),
            "tcp_accept_aliases" => self.tcp_accept_aliases = boolean(name, v)?,
            "tcp_connect_timeout" => {
                self.tcp_connect_timeout = ranged(name, v, 0, 3600, "seconds")? as u32
            }
            "enable_tls" => self.enable_tls = boolean(name, v)?,
            "disable_tls" => self.enable_tls = !boolean(name, v)?,
            "tls_port_no" => self.tls_port_no = ranged(name, v, 1, 65535, "a port")? as u16,
            n if crate::net::tls::TLS_SETTING_NAMES.contains(&n) => {
                let value = match v {
                    GlobalValue::Int(i) => crate::net::tls::TlsValue::Int(*i),
                    GlobalValue::Str(s) | GlobalValue::Ident(s) => {
                        crate::net::tls::TlsValue::Str(s)
                    }
                    GlobalValue::Sockets(_) => {
                        return Err(GlobalError::BadType {
                            name: name.into(),
                            expected: "a number, yes/no or a string",
                        })
                    }
                };
                self.tls.set(n, value).map_err(|e| GlobalError::Tls {
                    name: name.into(),
                    reason: e.to_string(),
                })?
            }
            "tcp_max_connections" => {
                self.tcp_max_connections = ranged(name, v, 1, 1 << 20, "1..1048576")? as u32
            }
            "tcp_connection_lifetime" => {
                self.tcp_connection_lifetime = ranged(name, v, 1, 86_400, "seconds")? as u32
            }
            "tcp_msg_read_timeout" => {
                self.tcp_msg_read_timeout = ranged(name, v, 1, 3600, "seconds")? as u32
            }
            "tcp_send_timeout" => {
                self.tcp_send_timeout = ranged(name, v, 0, 3600, "seconds")? as u32
            }
            "advertised_address" => self.advertised_address = Some(string(name, v)?),
            "advertised_port" => {
                self.advertised_port = Some(ranged(name, v, 1, 65535, "1..65535")? as u16)
            }
            "disable_core_dump" | "disable_core" => self.disable_core_dump = boolean(name, v)?,
            "open_files_limit" | "open_fd_limit" => self.open_files_limit = int(name, v)?,
            "mcast_loopback" => self.mcast_loopback = boolean(name, v)?,
            "mcast_ttl" => self.mcast_ttl = int(name, v)?,
            "statistics" => self.statistics = Some(string(name, v)?),
            "use_dns_cache" => self.use_dns_cache = yes_no(name, v)?,
            "dns_cache_mem" => {
                self.dns_cache_mem = ranged(name, v, 1, 1_048_576, "1..1048576 KB")? as u32
            }
            "dns_try_ipv6" => self.dns_settings.try_ipv6 = yes_no(name, v)?,
            "dns_try_naptr" => self.dns_settings.try_naptr = yes_no(name, v)?,
            "dns_srv_lb" => self.dns_settings.srv_lb = yes_no(name, v)?,
            "use_dns_failover" => self.dns_settings.failover = yes_no(name, v)?,
            "dns_cache_negative_ttl" => {
                self.dns_settings.negative_ttl = ranged(name, v, 0, 86_400, "0..86400 s")? as u32
            }
            "dns_cache_min_ttl" => {
                self.dns_settings.min_ttl = ranged(name, v, 0, 86_400, "0..86400 s")? as u32
            }
            "dns_cache_max_ttl" => {
                self.dns_settings.max_ttl = ranged(name, v, 0, 31_536_000, "seconds")? as u32
            }
            "use_dst_blacklist" => self.use_dst_blacklist = yes_no(name, v)?,
            "dst_blacklist_expire" => {
                self.dst_blacklist_expire =
                    ranged(name, v, 1, 31_536_000, "1..31536000 seconds")? as u32
            }
            "dst_blacklist_mem" => {
                self.dst_blacklist_mem = ranged(name, v, 1, 1_048_576, "1..1048576 KB")? as u32
            }
            "metrics_listen" => self.metrics_listen = metrics_listen(v)?,
            other if IGNORED.contains(&other) => self.ignored.push(other.to_string()),
            other => return Err(GlobalError::Unknown(other.to_string())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_known_and_refuses_unknown() {
        let mut c = CoreCfg::default();
        c.set("children", &GlobalValue::Int(4)).unwrap();
        c.set("fifo", &GlobalValue::Str("/tmp/ser_fifo".into()))
            .unwrap();
        c.set("check_via", &GlobalValue::Int(0)).unwrap();
        assert_eq!(c.children, 4);
        assert_eq!(c.fifo.as_deref(), Some("/tmp/ser_fifo"));
        assert!(matches!(
            c.set("no_such", &GlobalValue::Int(1)),
            Err(GlobalError::Unknown(_))
        ));
        assert!(matches!(
            c.set("port", &GlobalValue::Int(70000)),
            Err(GlobalError::Range { .. })
        ));
        assert!(matches!(
            c.set("children", &GlobalValue::Str("x".into())),
            Err(GlobalError::BadType { .. })
        ));
        c.set("fifo", &GlobalValue::Str(String::new())).unwrap();
        assert_eq!(c.fifo, None);
    }

    #[test]
    fn tcp_and_tls_settings_are_honoured_or_refused() {
        let mut c = CoreCfg::default();
        c.set("tcp_accept_aliases", &GlobalValue::Int(1)).unwrap();
        assert!(c.tcp_accept_aliases);
        c.set("tcp_accept_aliases", &GlobalValue::Int(0)).unwrap();
        assert!(!c.tcp_accept_aliases);
        c.set("tcp_connection_lifetime", &GlobalValue::Int(30))
            .unwrap();
        c.set("tcp_max_connections", &GlobalValue::Int(10)).unwrap();
        c.set("tcp_msg_read_timeout", &GlobalValue::Int(5)).unwrap();
        assert_eq!(
            (
                c.tcp_connection_lifetime,
                c.tcp_max_connections,
                c.tcp_msg_read_timeout
            ),
            (30, 10, 5)
        );
        c.set("tls_method", &GlobalValue::Ident("tlsv1".into()))
            .unwrap();
        assert!(matches!(
            c.set("tls_method", &GlobalValue::Ident("sslv2".into())),
            Err(GlobalError::Tls { .. })
        ));
        c.set("tls_certificate", &GlobalValue::Str("/x/cert.pem".into()))
            .unwrap();
        c.set("enable_tls", &GlobalValue::Int(1)).unwrap();
        assert!(c.enable_tls);
        c.set("disable_tls", &GlobalValue::Int(1)).unwrap();
        assert!(!c.enable_tls);
    }

    #[test]
    fn the_dst_blacklist_settings_are_type_checked() {
        let mut c = CoreCfg::default();
        assert!(!c.use_dst_blacklist);
        assert_eq!((c.dst_blacklist_expire, c.dst_blacklist_mem), (60, 250));
        c.set("use_dst_blacklist", &GlobalValue::Int(1)).unwrap();
        c.set("dst_blacklist_expire", &GlobalValue::Int(5)).unwrap();
        c.set("dst_blacklist_mem", &GlobalValue::Int(64)).unwrap();
        assert!(c.use_dst_blacklist);
        assert_eq!((c.dst_blacklist_expire, c.dst_blacklist_mem), (5, 64));
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
        for (name, bad) in [
            ("use_dst_blacklist", GlobalValue::Ident("maybe".into())),
            ("use_dst_blacklist", GlobalValue::Int(2)),
            ("dst_blacklist_expire", GlobalValue::Int(0)),
            ("dst_blacklist_expire", GlobalValue::Str("x".into())),
            ("dst_blacklist_mem", GlobalValue::Int(0)),
        ] {
            assert!(c.set(name, &bad).is_err(), "{name} = {bad:?}");
        }
    }

    #[test]
    fn the_dns_settings_are_honoured_and_type_checked() {
        let mut c = CoreCfg::default();
        assert!(c.use_dns_cache && c.dns_settings.try_ipv6 && !c.dns_settings.try_naptr);
        for (name, v) in [
            ("use_dns_cache", 0),
            ("dns_cache_mem", 64),
            ("dns_try_ipv6", 0),
            ("dns_try_naptr", 1),
            ("dns_srv_lb", 1),
            ("use_dns_failover", 1),
            ("dns_cache_negative_ttl", 5),
            ("dns_cache_min_ttl", 2),
            ("dns_cache_max_ttl", 600),
        ] {
            c.set(name, &GlobalValue::Int(v)).unwrap();
        }
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
        assert!(!c.use_dns_cache);
        assert_eq!(c.dns_cache_mem, 64);
        let s = c.dns_settings;
        assert!(!s.try_ipv6 && s.try_naptr && s.srv_lb && s.failover);
        assert_eq!((s.negative_ttl, s.min_ttl, s.max_ttl), (5, 2, 600));
        for (name, bad) in [
            ("use_dns_cache", GlobalValue::Int(2)),
            ("dns_try_naptr", GlobalValue::Ident("maybe".into())),
            ("dns_cache_mem", GlobalValue::Int(0)),
            ("dns_cache_negative_ttl", GlobalValue::Int(-1)),
        ] {
            assert!(c.set(name, &bad).is_err(), "{name} = {bad:?}");
        }
        assert!(c
            .set("use_dns_failover", &GlobalValue::Ident("maybe".into()))
            .is_err());
    }

    #[test]
    fn metrics_listen_takes_an_address_and_port_or_nothing() {
        let mut c = CoreCfg::default();
        assert_eq!(c.metrics_listen, None);
        c.set("metrics_listen", &GlobalValue::Str("127.0.0.1:9090".into()))
            .unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        c.set("metrics_listen", &GlobalValue::Str("[::1]:9100".into()))
            .unwrap();
        assert_eq!(c.metrics_listen, Some("[::1]:9100".parse().unwrap()));
        c.set("metrics_listen", &GlobalValue::Str(String::new()))
            .unwrap();
        assert_eq!(c.metrics_listen, None);
        for bad in [
            GlobalValue::Str("localhost:9090".into()),
            GlobalValue::Str("127.0.0.1".into()),
            GlobalValue::Str("127.0.0.1:0".into()),
            GlobalValue::Str("127.0.0.1:70000".into()),
            GlobalValue::Int(9090),
        ] {
            assert!(
                matches!(
                    c.set("metrics_listen", &bad),
                    Err(GlobalError::MetricsListen { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sock_names_are_the_fifo_permissions_not_ignored() {
        // SER 0.9: one mode/owner for the FIFO and the unix socket.
        let mut c = CoreCfg::default();
        c.set("sock_mode", &GlobalValue::Int(0o600)).unwrap();
        c.set("sock_user", &GlobalValue::Str("ser".into())).unwrap();
        c.set("sock_group", &GlobalValue::Str("sip".into()))
            .unwrap();
        assert_eq!(c.fifo_mode, 0o600);
        assert_eq!(c.fifo_user.as_deref(), Some("ser"));
        assert_eq!(c.fifo_group.as_deref(), Some("sip"));
        c.set("file_mode", &GlobalValue::Int(0o640)).unwrap();
        assert_eq!(c.fifo_mode, 0o640);
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
        assert_eq!(c.unix_sock_mode, None);
    }

    #[test]
    fn log_facility_and_log_name_are_checked_at_load() {
        let mut c = CoreCfg::default();
        assert_eq!(c.log_name, "ser");
        c.set("log_facility", &GlobalValue::Ident("LOG_LOCAL3".into()))
            .unwrap();
        assert_eq!(c.log_facility, "LOG_LOCAL3");
        let e = c
            .set("log_facility", &GlobalValue::Ident("LOG_LOCAL9".into()))
            .unwrap_err();
        assert!(matches!(e, GlobalError::BadValue { .. }), "{e}");
        assert!(e.to_string().contains("LOG_LOCAL9"), "{e}");
        c.set("log_name", &GlobalValue::Str("ser-edge".into()))
            .unwrap();
        assert_eq!(c.log_name, "ser-edge");
        for bad in ["", "two words", "tab\there", &"x".repeat(33)] {
            assert!(
                c.set("log_name", &GlobalValue::Str(bad.into())).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(c.log_name, "ser-edge");
        assert!(c.ignored.is_empty(), "{:?}", c.ignored);
    }

    #[test]
    fn jsonrpc_listen_is_loopback_only() {
        let mut c = CoreCfg::default();
        let set = |c: &mut CoreCfg, n: &str, v: &str| c.set(n, &GlobalValue::Str(v.into()));
        set(&mut c, "jsonrpc_listen", "127.0.0.1:5081").unwrap();
        assert_eq!(c.jsonrpc_listen, Some("127.0.0.1:5081".parse().unwrap()));
        set(&mut c, "jsonrpc_listen", "[::1]:5081").unwrap();
        set(&mut c, "jsonrpc_socket", "/run/ser/jsonrpc.sock").unwrap();
        assert_eq!(c.jsonrpc_socket.as_deref(), Some("/run/ser/jsonrpc.sock"));
        for bad in [
            "0.0.0.0:5081",
            "192.0.2.1:5081",
            "localhost:5081",
            "127.0.0.1",
        ] {
            let e = set(&mut c, "jsonrpc_listen", bad).unwrap_err().to_string();
            assert!(e.contains("jsonrpc_listen"), "{bad}: {e}");
        }
        set(&mut c, "jsonrpc_listen", "").unwrap();
        assert_eq!(c.jsonrpc_listen, None);
    }
}
