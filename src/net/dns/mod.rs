//! A stub resolver with a deadline, for host names met while handling a
//! message (an R-URI or dst-URI host, a Via sent-by with `reply_to_via`).
//!
//! glibc's getaddrinfo waits `timeout × attempts` per nameserver (10 s
//! with the defaults, more if resolv.conf says so), and a worker blocked
//! there serves nothing: a few requests naming hosts whose nameserver
//! never answers stopped every worker. Here the whole lookup — hosts file,
//! search domains, A then AAAA, every nameserver — ends within [`BUDGET`].
//! Names in the config are still resolved at load with getaddrinfo (the
//! full NSS), where waiting harms nobody.

pub mod cache;
mod conf;
pub mod queue;
mod rfc3263;
mod wire;

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use conf::{Hosts, ResolvConf};
pub use rfc3263::{Target, Targets};
use wire::{parse_answer, query, Answer};
pub use wire::{Naptr, QType, RData, Record, Srv};

/// The core settings of name resolution (SER 2.x's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `dns_try_ipv6`: AAAA records too.
    pub try_ipv6: bool,
    /// `dns_try_naptr`: NAPTR first when a URI names no transport.
    pub try_naptr: bool,
    /// `dns_srv_lb`: weighted random order among SRV targets of equal
    /// priority (RFC 2782); off, the heavier first.
    pub srv_lb: bool,
    /// `dns_cache_negative_ttl`: how long a name that does not exist is
    /// remembered, s.
    pub negative_ttl: u32,
    /// `dns_cache_min_ttl` / `dns_cache_max_ttl`, s.
    pub min_ttl: u32,
    pub max_ttl: u32,
    /// SER's `dns` (`-r`): a Via naming its host by a name that resolves
    /// to the source address needs no `received`.
    pub via_dns: bool,
    /// SER's `rev_dns` (`-R`): likewise when the source address's PTR
    /// name is the Via host.
    pub via_rev_dns: bool,
    /// `use_dns_failover`: a branch that gets a 503 or times out tries
    /// the next address of its next hop's name.
    pub failover: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            try_ipv6: true,
            try_naptr: false,
            srv_lb: false,
            negative_ttl: 60,
            min_ttl: 0,
            max_ttl: u32::MAX,
            via_dns: false,
            via_rev_dns: false,
            failover: false,
        }
    }
}

/// How long a lookup that timed out (no nameserver answered) is
/// remembered: long enough that a dead nameserver costs one wait, not one
/// per call; short enough that its recovery is noticed.
const FAILED_TTL_S: u64 = 5;

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Set the core settings (before the fork).
pub fn configure(s: Settings) {
    let _ = SETTINGS.set(s);
}

pub fn settings() -> Settings {
    SETTINGS.get().copied().unwrap_or_default()
}

/// The longest one lookup may block a worker. SER 2.x's `dns_retr_time`
/// and `dns_retr_no` tuned the system resolver's retries; they are
/// accepted and reported as ignored at start (`route::globals`), because
/// a worker's wait must have a ceiling no config can raise. A constant:
/// long enough for a recursive server to resolve a cold name, short
/// enough that a dead one costs about one retransmission of the caller.
pub const BUDGET: Duration = Duration::from_secs(2);

/// The first wait for an answer; doubled each round over the servers.
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// Rounds over the nameservers (each server is asked once per round).
const MAX_ROUNDS: usize = 3;

/// Why a name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("not a host name")]
    BadName,
    #[error("no address for the name")]
    NotFound,
    #[error("no nameserver answered within {0:?}")]
    Timeout(Duration),
    /// A cache-only resolver ([`Resolver::cache_only`]) met a name the
    /// cache does not hold: the lookup must be made elsewhere.
    #[error("not in the DNS cache")]
    NotCached,
}

/// Nameservers, search domains and hosts file, plus the time budget.
#[derive(Debug, Clone)]
pub struct Resolver {
    conf: ResolvConf,
    hosts: Hosts,
    budget: Duration,
    settings: Settings,
    /// Use the shared cache ([`cache`]) when it exists.
    cached: bool,
    /// Answer from the cache only: a miss is [`DnsError::NotCached`],
    /// never a query (what a worker may do while relaying).
    offline: bool,
}

static SYSTEM: OnceLock<Resolver> = OnceLock::new();

impl Resolver {
    pub fn new(conf: ResolvConf, hosts: Hosts, budget: Duration) -> Resolver {
        Resolver {
            conf,
            hosts,
            budget,
            settings: Settings::default(),
            cached: false,
            offline: false,
        }
    }

    /// With these settings.
    pub fn with_settings(mut self, s: Settings) -> Resolver {
        self.settings = s;
        self
    }

    /// The resolver of /etc/resolv.conf and /etc/hosts, read on first use.
    /// [`preload`] reads them in the supervisor, before the fork and any
    /// chroot, so every process shares one view.
    pub fn system() -> &'static Resolver {
        SYSTEM.get_or_init(|| {
            let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
            let mut r = Resolver::new(
                ResolvConf::parse(&read("/etc/resolv.conf")),
                Hosts::parse(&read("/etc/hosts")),
                BUDGET,
            )
            .with_settings(settings());
            r.cached = true;
            r
        })
    }

    /// The system resolver answering from the shared cache only: what a
    /// worker uses when the resolver process ([`queue`]) can do the
    /// lookups it misses.
    pub fn cache_only() -> &'static Resolver {
        static OFFLINE: OnceLock<Resolver> = OnceLock::new();
        OFFLINE.get_or_init(|| {
            let mut r = Resolver::system().clone();
            r.offline = true;
            r
        })
    }

    /// One address of `host` (an IP literal is returned as is, without
    /// asking anybody). Blocks at most the budget.
    pub fn lookup(&self, host: &str) -> Result<IpAddr, DnsError> {
        self.addrs(host)?
            .into_iter()
            .next()
            .ok_or(DnsError::NotFound)
    }

    /// Every address of `host`: IPv4 first, then IPv6 with
    /// `dns_try_ipv6`. Literals and the hosts file ask nobody.
    pub fn addrs(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        self.addrs_by(host, Instant::now() + self.budget)
    }

    /// [`Resolver::addrs`] with a deadline shared with other lookups.
    fn addrs_by(&self, host: &str, deadline: Instant) -> Result<Vec<IpAddr>, DnsError> {
        let host = host.trim_matches(|c| c == '[' || c == ']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(ip) = self.hosts.get(host) {
            return Ok(vec![ip]);
        }
        let mut types = vec![QType::A];
        if self.settings.try_ipv6 {
            types.push(QType::Aaaa);
        }
        let mut out = Vec::new();
        let mut last = DnsError::NotFound;
        for t in types {
            match self.records_by(host, t, deadline) {
                Ok(rs) => out.extend(rs.into_iter().filter_map(|r| match r.data {
                    RData::Addr(a) => Some(a),
                    _ => None,
                })),
                // No such name (or nobody answering): AAAA would say the
                // same, later. (Not cached: the A answer decides.)
                Err(e) => {
                    last = e;
                    break;
                }
            }
            if !out.is_empty() {
                break;
            }
        }
        if out.is_empty() {
            return Err(last);
        }
        Ok(out)
    }

    /// The records of type `qtype` of `name`, from the cache or the
    /// nameservers (then kept in the cache: answers for their TTL within
    /// `dns_cache_min_ttl..=max_ttl`, a name that does not exist for
    /// `dns_cache_negative_ttl`, a lookup nobody answered for a few
    /// seconds). Search domains apply to names without a dot. `Ok` and no
    /// records: the name exists without records of that type.
    pub fn records(&self, name: &str, qtype: QType) -> Result<Vec<Record>, DnsError> {
        self.records_by(name, qtype, Instant::now() + self.budget)
    }

    /// [`Resolver::records`] with a deadline shared with other lookups.
    fn records_by(
        &self,
        name: &str,
        qtype: QType,
        deadline: Instant,
    ) -> Result<Vec<Record>, DnsError> {
        let use_cache = self.cached && cache::enabled();
        let now = shm::monotonic_ms();
        if use_cache {
            match cache::get(name, qtype, now) {
                Some(cache::Cached::Records(r)) => return Ok(r),
                Some(cache::Cached::Failed) => return Err(DnsError::NotFound),
                None => {}
            }
        }
        if self.offline {
            return Err(DnsError::NotCached);
        }
        let r = self.ask_name(name, qtype, deadline);
        if use_cache {
            let s = &self.settings;
            let (value, ttl_s) = match &r {
                Ok(rs) => {
                    let ttl = rs.iter().map(|x| x.ttl).min().unwrap_or(s.negative_ttl);
                    let ttl = if rs.is_empty() {
                        s.negative_ttl
                    } else {
                        ttl.clamp(s.min_ttl, s.max_ttl.max(s.min_ttl))
                    };
                    (cache::Cached::Records(rs.clone()), u64::from(ttl))
                }
                Err(DnsError::Timeout(_)) => (cache::Cached::Failed, FAILED_TTL_S),
                Err(_) => (cache::Cached::Failed, u64::from(s.negative_ttl)),
            };
            if ttl_s > 0 {
                cache::put(name, qtype, &value, now.saturating_add(ttl_s * 1000), now);
            }
        }
        r
    }

    /// The nameservers' answer for `name`, trying the search domains.
    fn ask_name(
        &self,
        name: &str,
        qtype: QType,
        deadline: Instant,
    ) -> Result<Vec<Record>, DnsError> {
        let mut found_empty = false;
        for cand in self.conf.candidates(name) {
            match self.ask(&cand, qtype, deadline)? {
                Answer::Records(r) if !r.is_empty() => return Ok(r),
                Answer::Records(_) => found_empty = true,
                Answer::ServerFailure | Answer::NoSuchName => {}
            }
        }
        if found_empty {
            return Ok(Vec::new());
        }
        Err(DnsError::NotFound)
    }

    /// Ask the servers in turn, waiting longer each round, until one
    /// answers or the deadline passes.
    fn ask(&self, name: &str, qtype: QType, deadline: Instant) -> Result<Answer, DnsError> {
        let q = query(random_id(), name, qtype).map_err(|_| DnsError::BadName)?;
        let mut wait = FIRST_WAIT;
        let mut failures = 0;
        for _ in 0..MAX_ROUNDS {
            for server in &self.conf.servers {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(DnsError::Timeout(self.budget));
                }
                match exchange(*server, &q, wait.min(left)) {
                    Ok(Answer::ServerFailure) | Err(_) => failures += 1,
                    Ok(a) => return Ok(a),
                }
            }
            wait *= 2;
        }
        // Every server refused or failed every time: the name is as good
        // as unknown, and waiting on would not change that.
        log::debug!("dns: {name}: {failures} failed exchanges");
        Err(DnsError::Timeout(self.budget))
    }
}

/// The `in-addr.arpa` / `ip6.arpa` name of `ip` (RFC 1035 3.5, RFC 3596).
fn ptr_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::with_capacity(72);
            for b in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

impl Resolver {
    /// The PTR names of `ip`.
    pub fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        Ok(self
            .records(&ptr_name(ip), QType::Ptr)?
            .into_iter()
            .filter_map(|r| match r.data {
                RData::Name(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// SER's `dns`/`rev_dns` check of a Via host that is a name: is it
    /// the address `ip` the request came from? Bounded like every lookup
    /// here and answered from the cache after the first time; false when
    /// neither setting is on (SER's default: add `received`).
    pub fn via_host_is(&self, host: &str, ip: IpAddr) -> bool {
        let host = host.trim_end_matches('.');
        if self.settings.via_dns && self.addrs(host).is_ok_and(|a| a.contains(&ip)) {
            return true;
        }
        self.settings.via_rev_dns
            && self
                .reverse(ip)
                .is_ok_and(|names| names.iter().any(|n| n.eq_ignore_ascii_case(host)))
    }
}

/// Read the system's resolver files now (call before the fork).
pub fn preload() {
    Resolver::system();
}

/// A query id nobody off-path can predict (with the random source port,
/// what keeps forged answers out).
fn random_id() -> u16 {
    let mut b = [0u8; 2];
    if crate::os::random::fill(&mut b).is_err() {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return n as u16;
    }
    u16::from_ne_bytes(b)
}

/// Send `q` to `server` from a fresh socket and wait up to `wait` for its
/// answer; datagrams that are not the answer are ignored.
fn exchange(server: SocketAddr, q: &[u8], wait: Duration) -> io::Result<Answer> {
    let any: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(any)?;
    // Connected: the kernel drops datagrams from anyone but the server.
    sock.connect(server)?;
    sock.send(q)?;
    let until = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        sock.set_read_timeout(Some(left))?;
        let n = sock.recv(&mut buf)?;
        if let Ok(a) = parse_answer(q, &buf[..n]) {
            return Ok(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// A nameserver on loopback that answers every A query for
    /// `known` with 192.0.2.1, NXDOMAIN for other names, and nothing at
    /// all when `silent`. Returns its address; serves `n` queries.
    fn fake_server(silent: bool, n: usize) -> (SocketAddr, thread::JoinHandle<usize>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let addr = s.local_addr().unwrap();
        let h = thread::spawn(move || {
            let mut seen = 0;
            let mut buf = [0u8; 512];
            while seen < n {
                let Ok((len, from)) = s.recv_from(&mut buf) else {
                    break;
                };
                seen += 1;
                if silent {
                    continue;
                }
                let q = &buf[..len];
                let known = query(0, "pbx.example", QType::A).unwrap();
                let is_a_for_known = q[12..] == known[12..];
                let r = if is_a_for_known {
                    wire::tests::response(q, 0, &[(1, &[192, 0, 2, 1])])
                } else {
                    wire::tests::response(q, 3, &[])
                };
                s.send_to(&r, from).unwrap();
            }
            seen
        });
        (addr, h)
    }

    fn resolver(servers: Vec<SocketAddr>, search: &[&str], budget: Duration) -> Resolver {
        Resolver::new(
            ResolvConf {
                servers,
                search: search.iter().map(|s| s.to_string()).collect(),
            },
            Hosts::parse("127.0.0.7 local-name\n"),
            budget,
        )
    }

    #[test]
    fn literals_and_hosts_ask_nobody() {
        // No server listens on the discard port; a query would fail.
        let r = resolver(
            vec!["127.0.0.1:9".parse().unwrap()],
            &[],
            Duration::from_millis(300),
        );
        assert_eq!(
            r.lookup("10.1.2.3").unwrap(),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(r.lookup("::1").unwrap(), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            r.lookup("LOCAL-NAME").unwrap(),
            "127.0.0.7".parse::<IpAddr>().unwrap()
        );
        assert!(r.lookup("bad name").is_err());
    }

    #[test]
    fn answers_and_search_domains() {
        // "pbx" → pbx.example via the search list (A), then NXDOMAIN for
        // the unknown name (no AAAA asked after NXDOMAIN): two queries.
        let (addr, h) = fake_server(false, 2);
        let r = resolver(vec![addr], &["example"], Duration::from_secs(5));
        assert_eq!(
            r.lookup("pbx").unwrap(),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert!(matches!(r.lookup("nope.example"), Err(DnsError::NotFound)));
        assert_eq!(h.join().unwrap(), 2);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            ptr_name("192.0.2.5".parse().unwrap()),
            "5.2.0.192.in-addr.arpa"
        );
        let v6 = ptr_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.") && v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"));
        assert_eq!(v6.split('.').count(), 34);
        // Neither setting on: never a lookup, always "not the source".
        let r = resolver(
            vec!["127.0.0.1:9".parse().unwrap()],
            &[],
            Duration::from_millis(50),
        );
        assert!(!r.via_host_is("local-name", "127.0.0.7".parse().unwrap()));
        let r = r.with_settings(Settings {
            via_dns: true,
            ..Settings::default()
        });
        assert!(r.via_host_is("local-name", "127.0.0.7".parse().unwrap()));
        assert!(!r.via_host_is("local-name", "127.0.0.8".parse().unwrap()));
    }

    #[test]
    fn a_silent_server_ends_in_a_timeout() {
        let (addr, h) = fake_server(true, 1);
        let r = resolver(vec![addr], &[], Duration::from_millis(300));
        assert!(matches!(r.lookup("pbx.example"), Err(DnsError::Timeout(_))));
        assert!(h.join().unwrap() >= 1, "the server was asked");
    }
}
