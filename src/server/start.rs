//! From command line to running processes: load the config, open the
//! sockets, map shared memory, fork the timer and the UDP workers, then
//! supervise. `ser -c` stops after loading and printing the sockets.

use std::path::Path;

use crate::cfg::ast::{Proto as CfgProto, SocketSpec};
use crate::cli::{self, CliAction, CliOpts};
use crate::net::{self, ListenAddr, Proto, SocketTable};
use crate::proc::{Rank, Supervisor};
use crate::route::globals::CoreCfg;
use crate::route::{self, Loaded, Runtime};
use crate::server::receive::Receiver;

/// Exit status for a refused config or command line.
const EXIT_BAD_CONFIG: i32 = 255;

/// The whole program; returns the process exit status.
/// The TLS context, built (files read) while the config is checked, before
/// any fork: the TCP main process serves TLS with it.
static TLS: std::sync::OnceLock<net::tls::TlsContext> = std::sync::OnceLock::new();

pub fn main_entry(args: Vec<String>) -> i32 {
    let opts = match cli::parse(&args) {
        Ok(CliAction::Run(o)) => o,
        Ok(CliAction::Help) => {
            print!("{}", cli::usage());
            return 0;
        }
        Ok(CliAction::Version) => {
            print!("{}", cli::version_text());
            return 0;
        }
        Err(e) => {
            eprintln!("ser: {e}\nUse -h for help.");
            return EXIT_BAD_CONFIG;
        }
    };
    let loaded = match load_config(&opts) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ser: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    let listen = match resolve_sockets(&loaded.core) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ser: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    if opts.check_only {
        print_sockets(&listen, &loaded.core);
        return 0;
    }
    run(opts, loaded, listen)
}

/// A `-l` value, `[proto:]addr[:port]` as `ser -h` documents it, split
/// the same way a `listen=` entry is.
fn cli_listen_spec(text: &str) -> Result<SocketSpec, StartError> {
    let spec = net::parse_spec(text).map_err(|e| StartError::CliListen(text.to_owned(), e))?;
    Ok(SocketSpec {
        proto: spec.proto.map(|p| match p {
            Proto::Udp => CfgProto::Udp,
            Proto::Tcp => CfgProto::Tcp,
            Proto::Tls => CfgProto::Tls,
        }),
        host: spec.host,
        port: spec.port,
    })
}

/// Command-line settings first, then the script overrides them (as SER).
fn core_from_cli(o: &CliOpts) -> Result<CoreCfg, StartError> {
    let mut c = CoreCfg::default();
    c.debug += o.debug_incr as i32;
    c.log_stderror = o.log_stderr;
    if let Some(n) = o.children {
        c.children = n;
    }
    c.tcp_children = o.tcp_children;
    c.disable_tcp = o.disable_tcp;
    // SER's second pass over the options: -r, -R and -v switch on, they
    // never switch off what the config set.
    c.dns |= o.dns;
    c.rev_dns |= o.rev_dns;
    c.check_via |= o.check_via;
    if let Some(b) = o.rcvbuf_max {
        c.maxbuffer = b;
    }
    if let Some(m) = o.shm_mb {
        c.shm_mb = m;
    }
    c.workdir = o.workdir.as_ref().map(|p| p.display().to_string());
    c.chroot = o.chroot.as_ref().map(|p| p.display().to_string());
    c.user = o.user.clone();
    c.group = o.group.clone();
    c.fifo = o.fifo.clone();
    c.unix_sock = o.unix_sock.clone();
    for l in &o.listen {
        c.listen.push(cli_listen_spec(l)?);
    }
    Ok(c)
}

/// Errors while loading, each printed as one `file:line:col: ...` line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Syntax(#[from] crate::cfg::CfgError),
    #[error("{0}")]
    Load(#[from] route::LoadError),
    #[error("listen: {0}")]
    Net(#[from] net::NetError),
    #[error("no socket to listen on")]
    NoSockets,
    /// A TLS socket whose certificate, key or CA list does not load.
    #[error("listen {0}: {1}")]
    Tls(String, #[source] Box<net::tls::TlsError>),
    /// `listen=tcp:…` with `disable_tcp=yes` or `-T`.
    #[error("listen {0}: TCP is disabled (disable_tcp / -T), remove the entry or enable TCP")]
    TcpDisabled(String),
    /// A `-l` value that is not `[proto:]addr[:port]`.
    #[error("-l {0}: {1}")]
    CliListen(String, #[source] net::NetError),
}

pub fn load_config(opts: &CliOpts) -> Result<Loaded, StartError> {
    let script = crate::cfg::parse_file(&opts.cfg_file)?;
    let file = opts.cfg_file.display().to_string();
    Ok(route::load(
        &script,
        &file,
        core_from_cli(opts)?,
        crate::modules::CATALOG,
    )?)
}

fn spec_text(s: &SocketSpec) -> String {
    let proto = match s.proto {
        Some(CfgProto::Udp) => "udp:",
        Some(CfgProto::Tcp) => "tcp:",
        Some(CfgProto::Tls) => "tls:",
        Some(CfgProto::Any) | None => "",
    };
    let host = if s.host.contains(':') && !s.host.starts_with('[') {
        format!("[{}]", s.host)
    } else {
        s.host.clone()
    };
    match s.port {
        Some(p) if p != 0 => format!("{proto}{host}:{p}"),
        _ => format!("{proto}{host}"),
    }
}

fn resolve_sockets(core: &CoreCfg) -> Result<Vec<ListenAddr>, StartError> {
    let specs: Vec<String> = core.listen.iter().map(spec_text).collect();
    // A TCP socket with TCP disabled contradicts itself: refuse it rather
    // than start without it.
    if core.disable_tcp {
        if let Some(s) = core
            .listen
            .iter()
            .find(|s| matches!(s.proto, Some(CfgProto::Tcp)))
        {
            return Err(StartError::TcpDisabled(spec_text(s)));
        }
    }
    // A listen address without transport opens UDP and TCP as SER's did
    // (unless disable_tcp / -T), and TLS too with enable_tls.
    let mut bare = vec![Proto::Udp];
    if !core.disable_tcp {
        bare.push(Proto::Tcp);
    }
    if core.enable_tls {
        bare.push(Proto::Tls);
    }
    let all = net::resolve_listen_for(&specs, core.port, core.tls_port_no, &bare)?;
    if all.is_empty() {
        return Err(StartError::NoSockets);
    }
    // TLS sockets need our certificate, key and CA list: a file that does
    // not load refuses the config here (`ser -c` included), not at the
    // first handshake.
    if let Some(l) = all.iter().find(|l| l.proto == Proto::Tls) {
        let ctx = core
            .tls
            .context()
            .map_err(|e| StartError::Tls(format!("tls:{}", l.addr), Box::new(e)))?;
        TLS.get_or_init(|| ctx);
    }
    Ok(all)
}

fn print_sockets(listen: &[ListenAddr], core: &CoreCfg) {
    println!("Listening on ");
    for l in listen {
        println!(
            "             {}: {} [{}]:{}",
            l.proto,
            l.name,
            l.addr.ip(),
            l.addr.port()
        );
    }
    print!("Aliases: ");
    for a in &core.alias {
        print!(
            "{}:{} ",
            a.host,
            a.port.map(|p| p.to_string()).unwrap_or_else(|| "*".into())
        );
    }
    println!();
    println!("config file ok, exiting...");
}

fn run(opts: CliOpts, loaded: Loaded, listen: Vec<ListenAddr>) -> i32 {
    match prepare(&opts, loaded, listen) {
        Ok(ready) => ready.launch(),
        Err(e) => {
            log::error!("{e}");
            eprintln!("ser: {e}");
            EXIT_BAD_CONFIG
        }
    }
}

/// Why the server could not be set up before its first fork.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("signals: {0}")]
    Signals(crate::proc::ProcError),
    #[error("logging: {0}")]
    Logging(#[from] crate::logging::LogError),
    #[error("cannot listen: {0}")]
    Claim(net::NetError),
    #[error("cannot listen on {addr}: {source}")]
    Open {
        addr: std::net::SocketAddr,
        source: net::NetError,
    },
    #[error("shared memory: {0}")]
    Shm(#[from] shm::ShmError),
    #[error("timers: {0}")]
    Timer(#[from] crate::timer::TimerError),
    #[error("{0}")]
    ModInit(#[from] route::export::ModInitError),
    #[error("process table: {0}")]
    Procs(shm::ShmError),
    #[error("cannot daemonize: {0}")]
    Daemon(crate::os::OsError),
    #[error("chroot {0}: {1}")]
    Chroot(String, crate::os::OsError),
    #[error("{0}")]
    Control(#[from] ControlError),
    #[error("statistics file {0}: {1}")]
    StatsFile(String, std::io::Error),
    #[error("supervisor: {0}")]
    Supervisor(crate::proc::ProcError),
    #[error("cannot drop privileges: {0}")]
    Privileges(crate::os::OsError),
    #[error("TCP process link: {0}")]
    StreamLink(std::io::Error),
    #[error("metrics_listen {0}: {1}")]
    Metrics(std::net::SocketAddr, std::io::Error),
}

/// Everything set up before the first fork, in the one order that works:
/// signals held, logging, listen addresses claimed and bound, shared memory,
/// timers, the runtime and every module's `mod_init`, the process table,
/// ctl settings, daemon/chroot, control files, statistics file, supervisor
/// (pid file), privileges dropped. Only [`prepare`] makes one and only
/// [`Ready::launch`] forks, so no process can run with a half-initialised
/// module or shared state.
struct Ready {
    rt: &'static Runtime,
    /// Receive sockets of workers 1.. of each listen address.
    rx_extra: &'static [Vec<std::net::UdpSocket>],
    children: u32,
    /// TCP reader processes (0 when no TCP/TLS address is served).
    tcp_readers: u32,
    mode: ProcessMode,
    control: ControlFiles,
    sup: Supervisor,
    /// Held for the server's life: they keep a second server off our
    /// addresses (children inherit them).
    _claims: Vec<net::ListenClaim>,
    /// The Prometheus endpoint's socket (`metrics_listen`), bound here
    /// with the rights we started with.
    metrics: Option<&'static std::net::TcpListener>,
}

fn prepare(opts: &CliOpts, loaded: Loaded, listen: Vec<ListenAddr>) -> Result<Ready, RunError> {
    crate::proc::hold_supervised_signals().map_err(RunError::Signals)?;
    let core = &loaded.core;
    let stderr = crate::logging::init(
        core.debug,
        core.log_stderror || opts.log_stderr,
        &core.log_facility,
        &core.log_name,
    )?
    .is_stderr();
    log::info!("ser {} starting", crate::util::version::version_tag());
    for name in &core.ignored {
        log::info!("global parameter {name} has no effect in this build");
    }
    let mode = ProcessMode::of(opts.no_fork, core.fork);
    let children = match mode {
        ProcessMode::SingleReceiver => 1,
        ProcessMode::Daemon | ProcessMode::Foreground => core.children.max(1),
    };
    let claims = listen
        .iter()
        .map(|l| net::claim_listen(l.proto, l.addr).map_err(RunError::Claim))
        .collect::<Result<Vec<_>, _>>()?;
    // One SO_REUSEPORT socket per worker: the kernel then hands every
    // datagram of one peer address to the same worker, so a peer's 180 and
    // 200 can never be reordered between two workers (with one shared
    // socket they were, measurably). Worker 0 of each address uses the
    // socket in the table, which also serves for sending.
    let mut socks = Vec::with_capacity(listen.len());
    let mut rx_extra: Vec<Vec<std::net::UdpSocket>> = Vec::with_capacity(listen.len());
    for l in listen {
        log::info!(
            "listening on {}: {} [{}]:{}",
            l.proto,
            l.name,
            l.addr.ip(),
            l.addr.port()
        );
        if l.proto.is_stream() {
            let tcp = net::open_tcp_listener(l.addr).map_err(|source| RunError::Open {
                addr: l.addr,
                source,
            })?;
            socks.push(net::ListenSocket::stream(l, tcp));
            rx_extra.push(Vec::new());
            continue;
        }
        let mut group = (0..children)
            .map(|_| net::open_udp(l.addr, core.maxbuffer, true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| RunError::Open {
                addr: l.addr,
                source,
            })?;
        let first = group.remove(0);
        socks.push(net::ListenSocket::udp(l, first));
        rx_extra.push(group);
    }
    let metrics = open_metrics(core.metrics_listen)?;
    let mut table = SocketTable::from_sockets(socks);
    let tcp_readers = if mode == ProcessMode::SingleReceiver {
        1
    } else {
        core.tcp_children.unwrap_or(children).max(1)
    };
    if table.serves(Proto::Tcp) || table.serves(Proto::Tls) {
        let ch = net::stream::Channels::new(tcp_readers as usize).map_err(RunError::StreamLink)?;
        net::stream::install(ch);
    }
    for a in &core.alias {
        table.add_alias(&a.host, a.port.filter(|p| *p != 0));
    }
    let region = shm::init_global(core.shm_mb as usize * 1024 * 1024)?;
    crate::timer::init(region)?;
    if net::stream::link().is_some() {
        net::stream::shared::init(region)?;
    }
    if core.use_dst_blacklist {
        let s = net::blacklist::Settings {
            expire_s: core.dst_blacklist_expire,
            mem_kb: core.dst_blacklist_mem,
        };
        net::blacklist::init(region, s)?;
        log::info!(
            "dst blacklist on: {} entries ({} KB), {} s per timeout or send failure",
            net::blacklist::capacity_for(s.mem_kb),
            s.mem_kb,
            s.expire_s
        );
    }
    net::dns::configure(net::dns::Settings {
        via_dns: core.dns,
        via_rev_dns: core.rev_dns,
        ..core.dns_settings
    });
    if core.use_dns_cache {
        // A slot and its block: about 128 bytes for a typical answer.
        let slots = (core.dns_cache_mem as usize * 1024 / 128).max(64);
        net::dns::cache::init(region, slots)?;
    }
    let rt: &'static Runtime = Box::leak(Box::new(Runtime::new(loaded, table)));
    // Before the fork and any chroot: every process shares one resolver view.
    net::dns::preload();
    for m in &rt.modules {
        m.mod_init(rt, region)?;
    }
    let rx_extra: &'static [Vec<std::net::UdpSocket>] = Box::leak(rx_extra.into_boxed_slice());
    crate::proc::shared::init(region).map_err(RunError::Procs)?;
    // A lock's owner whose pid now belongs to a stranger is dead to us.
    shm::set_membership(crate::proc::shared::is_member);
    crate::ctl::configure(crate::ctl::Settings {
        started: std::time::SystemTime::now(),
        argv: std::env::args().collect(),
        file_mode: rt.core.fifo_mode,
        reply_dir: rt.core.fifo_dir.clone().into(),
    });
    if mode == ProcessMode::Daemon {
        crate::os::daemonize(rt.core.workdir.as_deref().map(Path::new), stderr)
            .map_err(RunError::Daemon)?;
    }
    if let Some(dir) = &rt.core.chroot {
        crate::os::chroot_to(Path::new(dir)).map_err(|e| RunError::Chroot(dir.clone(), e))?;
    }
    // The control files are made before privileges are dropped, so that
    // they can be given to fifo_user / fifo_group, or by default to the
    // user ser runs as. Past this point a failure removes them again.
    let control = ControlFiles::open(rt)?;
    match finish_privileged(opts, rt) {
        Ok(sup) => Ok(Ready {
            rt,
            rx_extra,
            children,
            tcp_readers: if net::stream::link().is_some() {
                tcp_readers
            } else {
                0
            },
            mode,
            control,
            sup,
            _claims: claims,
            metrics,
        }),
        Err(e) => {
            control.remove();
            Err(e)
        }
    }
}

/// Binds the metrics endpoint before the fork and before privileges are
/// dropped, like the SIP sockets: a port taken or not allowed refuses the
/// start instead of leaving a server nobody can watch.
fn open_metrics(
    addr: Option<std::net::SocketAddr>,
) -> Result<Option<&'static std::net::TcpListener>, RunError> {
    let Some(addr) = addr else { return Ok(None) };
    let l = std::net::TcpListener::bind(addr).map_err(|e| RunError::Metrics(addr, e))?;
    if addr.ip().is_loopback() {
        log::info!("metrics on http://{addr}/metrics");
    } else {
        log::warn!(
            "metrics on http://{addr}/metrics, not a loopback address: whoever reaches it \
             reads the server's figures (no authentication)"
        );
    }
    Ok(Some(&*Box::leak(Box::new(l))))
}

/// The last steps that need the rights we started with: the `-s` file
/// (a file we cannot write refuses the start rather than losing every
/// later report), the supervisor with its pid file (written with root's
/// rights, as SER does, so it may live where only root writes), then
/// privileges are dropped.
fn finish_privileged(opts: &CliOpts, rt: &'static Runtime) -> Result<Supervisor, RunError> {
    let stats_file = match &opts.stats_file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| RunError::StatsFile(path.clone(), e))?,
        ),
        None => None,
    };
    let mut sup = Supervisor::new(opts.pid_file.clone(), opts.pgid_file.clone())
        .map_err(RunError::Supervisor)?;
    crate::os::drop_privileges(rt.core.user.as_deref(), rt.core.group.as_deref())
        .map_err(RunError::Privileges)?;
    if nix::unistd::geteuid().is_root() {
        log::warn!(
            "running as root: workers parse hostile input with every privilege; \
             start with -u/-g (user=/group=) to drop them"
        );
    }
    sup.set_status_report(crate::tm::funcs::stats_line);
    sup.set_death_hook(after_death);
    sup.set_tick(check_heartbeats);
    if let Some(f) = stats_file {
        sup.set_stats_file(f);
    }
    Ok(sup)
}

/// The supervisor's death hook: the references on transactions the dead
/// process held are dropped before its successor takes its slot. (Locks
/// it held are taken over by their next user, see `shm::mutex`.)
fn after_death(pid: i32, slot: Option<usize>) {
    let Some(slot) = slot else { return };
    let held = crate::proc::shared::take_held(slot);
    // A timer process that died firing: what it had not finished is fired
    // again by its successor (`shm::wheel`), with the references it holds.
    let firing = crate::timer::in_flight_of(pid);
    if !firing.is_empty() {
        log::warn!(
            "process {pid} died firing {} timer(s): its successor fires them again",
            firing.len()
        );
    }
    if held.is_empty() {
        return;
    }
    let (dropped, unlinked) = crate::tm::store::release_orphans(&held, &firing);
    log::warn!(
        "process {pid} died holding {dropped} transaction reference(s): released, \
         {unlinked} unfinished transaction(s) with no timer dropped"
    );
}

/// The supervisor's tick: processes whose heartbeat stopped are logged
/// (once, and again when they resume).
fn check_heartbeats() {
    use crate::proc::shared::Stall;
    let limit = crate::proc::shared::STALL_AFTER.as_millis() as u64;
    for s in crate::proc::shared::check_stalls(shm::monotonic_ms(), limit) {
        match s {
            Stall::Stalled { pid, desc, ms } => log::error!(
                "process {pid} ({desc}) has not run its loop for {ms} ms: stalled \
                 (stopped, or stuck in a script or a wait); what it serves waits"
            ),
            Stall::Resumed { pid, desc } => {
                log::warn!("process {pid} ({desc}) runs its loop again")
            }
        }
    }
}

impl Ready {
    /// Fork the timer, the UDP workers and the control servers, then
    /// supervise them until told to stop; returns the exit status.
    fn launch(mut self) -> i32 {
        if self.mode == ProcessMode::SingleReceiver {
            log::info!("-D / fork=no: one receiving process per listen socket, in the foreground");
        }
        let code = match self.spawn_all() {
            Ok(()) => self.sup.run(),
            Err(e) => {
                log::error!("cannot fork {e}");
                EXIT_BAD_CONFIG
            }
        };
        for m in &self.rt.modules {
            m.destroy();
        }
        self.control.remove();
        code
    }

    fn spawn_all(&mut self) -> Result<(), String> {
        let rt = self.rt;
        self.sup
            .spawn(Rank::Timer, "timer".into(), crate::timer::run)
            .map_err(|e| format!("the timer: {e}"))?;
        for (si, s) in rt.sockets.all().iter().enumerate() {
            if s.proto().is_stream() {
                continue;
            }
            for idx in 0..self.children {
                let desc = format!(
                    "receiver child={idx} sock= {}:{}",
                    s.listen.addr.ip(),
                    s.listen.addr.port()
                );
                let rank = Rank::Udp {
                    sock: si as u16,
                    idx: idx as u16,
                };
                let own = if idx == 0 {
                    None
                } else {
                    self.rx_extra.get(si).and_then(|g| g.get(idx as usize - 1))
                };
                self.sup
                    .spawn(rank, desc, move || udp_worker(rt, si, own))
                    .map_err(|e| format!("a UDP worker: {e}"))?;
            }
        }
        if self.tcp_readers > 0 {
            self.sup
                .spawn(Rank::TcpMain, "tcp main process".into(), move || {
                    tcp_main(rt)
                })
                .map_err(|e| format!("the TCP main process: {e}"))?;
            for i in 0..self.tcp_readers {
                self.sup
                    .spawn(
                        Rank::TcpReader(i as u16),
                        format!("tcp receiver child={i}"),
                        move || tcp_reader(rt, i as usize),
                    )
                    .map_err(|e| format!("a TCP reader: {e}"))?;
            }
        }
        self.control
            .spawn_servers(rt, &mut self.sup)
            .map_err(|e| format!("a control server: {e}"))?;
        // tm made the queue (at mod_init) if it relays to names.
        if net::dns::queue::enabled() {
            self.sup
                .spawn(
                    Rank::Module("dns resolver"),
                    "dns resolver".into(),
                    net::dns::queue::run,
                )
                .map_err(|e| format!("the DNS resolver: {e}"))?;
        }
        // A core process of its own, as the FIFO server: the endpoint is a
        // core setting, not a module's, and a slow scraper must never
        // share a loop with SIP or control traffic. It only reads shm.
        if let Some(l) = self.metrics {
            self.sup
                .spawn(Rank::Metrics, "metrics server".into(), move || {
                    crate::metrics::serve(l)
                })
                .map_err(|e| format!("the metrics server: {e}"))?;
        }
        for p in rt.modules.iter().flat_map(|m| m.procs()) {
            self.sup
                .spawn(Rank::Module(p.desc), p.desc.into(), p.body)
                .map_err(|e| format!("{}: {e}", p.desc))?;
        }
        Ok(())
    }
}

/// How the processes are laid out, from `-D` and `fork=`.
///
/// SER 0.9's `-D` and `fork=no` meant "do not fork": no daemon, one process
/// receiving SIP (SER still forked its timer and FIFO server, and so do
/// we). SER 2.x added `-DD`: the usual worker processes, but the creator
/// stays in the foreground (what service managers and tests want).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessMode {
    /// No `-D`, `fork=yes`: detach into the background, `children` workers
    /// per socket.
    Daemon,
    /// `-DD` (or more): `children` workers per socket, in the foreground.
    Foreground,
    /// `-D` or `fork=no`: in the foreground, one receiving process per
    /// listen socket (plus timer and control servers).
    SingleReceiver,
}

impl ProcessMode {
    pub fn of(d_count: u32, cfg_fork: bool) -> ProcessMode {
        match (d_count, cfg_fork) {
            (1, _) | (_, false) => ProcessMode::SingleReceiver,
            (0, true) => ProcessMode::Daemon,
            _ => ProcessMode::Foreground,
        }
    }
}

/// The FIFO and unix socket of the management interface, created before
/// the fork and served by their own processes.
struct ControlFiles {
    fifo: Option<&'static crate::ctl::fifo::FifoPipe>,
    unix: Option<&'static crate::ctl::unixsock::CtlSocket>,
    jsonrpc: Option<&'static crate::ctl::jsonrpc::server::Listeners>,
    registry: &'static crate::ctl::Registry,
}

#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error("{0}")]
    Fifo(#[from] crate::ctl::fifo::FifoError),
    #[error("{0}")]
    Unix(#[from] crate::ctl::unixsock::UnixSockError),
    #[error("{0}")]
    JsonRpc(#[from] crate::ctl::jsonrpc::server::JsonRpcError),
    #[error("owner of the FIFO / unix socket (fifo_user, fifo_group, user, group): {0}")]
    Owner(#[from] crate::os::OsError),
}

/// The owner of the unix socket and of the JSON-RPC socket, which SER
/// 0.9 tied to the FIFO's: `unix_sock_user`/`_group`, else the FIFO's,
/// else `-u`/`-g`.
fn unix_sock_owner(
    core: &CoreCfg,
) -> Result<(Option<nix::unistd::Uid>, Option<nix::unistd::Gid>), crate::os::OsError> {
    control_owner(
        core.unix_sock_user
            .as_deref()
            .or(core.fifo_user.as_deref())
            .or(core.user.as_deref()),
        core.unix_sock_group
            .as_deref()
            .or(core.fifo_group.as_deref())
            .or(core.group.as_deref()),
    )
}

/// Owner and group for a control file: `user` / `group` are the ones
/// configured for it, else ser's own (`-u`/`-g`), so that once privileges
/// are dropped ser's user can still use its management interface. The
/// group defaults to the owner's primary group.
fn control_owner(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<(Option<nix::unistd::Uid>, Option<nix::unistd::Gid>), crate::os::OsError> {
    let owner = user.map(crate::os::resolve_user).transpose()?;
    let gid = match group {
        Some(g) => Some(crate::os::resolve_group(g)?),
        None => owner.map(|(_, g)| g),
    };
    Ok((owner.map(|(u, _)| u), gid))
}

impl ControlFiles {
    fn open(rt: &'static Runtime) -> Result<ControlFiles, ControlError> {
        let mut registry = crate::ctl::Registry::with_core();
        for m in &rt.modules {
            registry.add(m.ctl_commands());
        }
        let registry: &'static crate::ctl::Registry = Box::leak(Box::new(registry));
        let core = &rt.core;
        let fifo = match &core.fifo {
            Some(path) => {
                let (owner, group) = control_owner(
                    core.fifo_user.as_deref().or(core.user.as_deref()),
                    core.fifo_group.as_deref().or(core.group.as_deref()),
                )?;
                let pipe =
                    crate::ctl::fifo::prepare(Path::new(path), core.fifo_mode, owner, group)?;
                Some(&*Box::leak(Box::new(pipe)))
            }
            None => None,
        };
        let unix = match &core.unix_sock {
            Some(path) => {
                let prepared =
                    unix_sock_owner(core)
                        .map_err(ControlError::from)
                        .and_then(|(owner, group)| {
                            let mode = core.unix_sock_mode.unwrap_or(core.fifo_mode);
                            let sock =
                                crate::ctl::unixsock::prepare(Path::new(path), mode, owner, group)?;
                            Ok(sock)
                        });
                match prepared {
                    Ok(s) => Some(&*Box::leak(Box::new(s))),
                    Err(e) => {
                        if let Some(f) = fifo {
                            crate::ctl::fifo::remove(&f.path);
                        }
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let jsonrpc = match Self::open_jsonrpc(core) {
            Ok(l) => l,
            Err(e) => {
                if let Some(f) = fifo {
                    crate::ctl::fifo::remove(&f.path);
                }
                if let Some(s) = unix {
                    crate::ctl::unixsock::remove(&s.path);
                }
                return Err(e);
            }
        };
        Ok(ControlFiles {
            fifo,
            unix,
            jsonrpc,
            registry,
        })
    }

    /// The JSON-RPC listeners; the socket file gets the unix socket's
    /// mode and owner.
    fn open_jsonrpc(
        core: &CoreCfg,
    ) -> Result<Option<&'static crate::ctl::jsonrpc::server::Listeners>, ControlError> {
        if core.jsonrpc_socket.is_none() && core.jsonrpc_listen.is_none() {
            return Ok(None);
        }
        let (owner, group) = unix_sock_owner(core)?;
        let l = crate::ctl::jsonrpc::server::prepare(
            core.jsonrpc_socket.as_deref().map(Path::new),
            core.jsonrpc_listen,
            core.unix_sock_mode.unwrap_or(core.fifo_mode),
            owner,
            group,
        )?;
        Ok(Some(&*Box::leak(Box::new(l))))
    }

    fn spawn_servers(
        &self,
        rt: &'static Runtime,
        sup: &mut Supervisor,
    ) -> Result<(), crate::proc::ProcError> {
        let registry = self.registry;
        if let Some(pipe) = self.fifo {
            sup.spawn(Rank::Fifo, "fifo server".into(), move || {
                crate::ctl::fifo::serve(pipe, registry)
            })?;
        }
        if let Some(sock) = self.unix {
            let timeout = std::time::Duration::from_millis(u64::from(rt.core.unix_tx_timeout_ms));
            for _ in 0..rt.core.unix_sock_children.max(1) {
                sup.spawn(
                    Rank::UnixSock,
                    "unix domain socket server".into(),
                    move || crate::ctl::unixsock::serve(sock, registry, timeout),
                )?;
            }
        }
        if let Some(l) = self.jsonrpc {
            sup.spawn(
                Rank::Module("jsonrpc server"),
                "jsonrpc server".into(),
                move || crate::ctl::jsonrpc::server::serve(l, registry),
            )?;
        }
        Ok(())
    }

    fn remove(&self) {
        if let Some(f) = self.fifo {
            crate::ctl::fifo::remove(&f.path);
        }
        if let Some(s) = self.unix {
            crate::ctl::unixsock::remove(&s.path);
        }
        if let Some(l) = self.jsonrpc {
            crate::ctl::jsonrpc::server::remove(l);
        }
    }
}

/// The receive loop of one UDP worker: it reads its own socket (`own`, or
/// the table's socket for worker 0) and sends through the table.
fn udp_worker(rt: &Runtime, sock_idx: usize, own: Option<&std::net::UdpSocket>) -> i32 {
    let Some(sock) = rt.sockets.all().get(sock_idx) else {
        return 1;
    };
    let Some(rx_sock) = own.or(sock.udp_socket()) else {
        return 1;
    };
    let mut rx = Receiver::new(rt);
    // An idle worker wakes up now and then to beat (see check_heartbeats).
    if let Err(e) = rx_sock.set_read_timeout(Some(crate::proc::shared::BEAT_EVERY)) {
        log::warn!(
            "no receive timeout on {} ({e}): an idle worker looks stalled",
            sock.listen.addr
        );
    }
    // Arrival stamps tell admission control how far behind we are.
    if let Err(e) = net::enable_arrival_stamps(rx_sock) {
        log::warn!(
            "no arrival stamps on {} ({e}): no overload protection",
            sock.listen.addr
        );
    }
    let mut cmsg = net::stamp_space();
    let mut rbuf = vec![0u8; 65536];
    let mut spare: Vec<u8> = Vec::with_capacity(4096);
    crate::proc::shared::mark_receiver();
    loop {
        crate::proc::shared::beat();
        match net::recv_stamped(rx_sock, &mut rbuf, &mut cmsg) {
            Ok(r) => {
                crate::proc::shared::note_received(r.queued);
                if let Some(q) = r.queued {
                    rx.overload.observe(q);
                }
                spare.clear();
                spare.extend_from_slice(rbuf.get(..r.len).unwrap_or_default());
                spare = rx.handle(std::mem::take(&mut spare), r.src, sock);
            }
            Err(e) if idle_wakeup(&e) => continue,
            Err(e) => {
                crate::log_limited!(log::Level::Error, "recvfrom on {}: {e}", sock.listen.addr);
            }
        }
    }
}

/// A receive that ended without a message: a signal, or the timeout that
/// wakes an idle loop to beat.
fn idle_wakeup(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
    )
}

/// A TCP reader: the messages the TCP main process framed for it, each
/// handled as a UDP worker handles a datagram (`Receiver::handle`), with
/// the connection's remote address as the source.
fn tcp_reader(rt: &Runtime, idx: usize) -> i32 {
    let Some((rx_sock, _)) = net::stream::link().and_then(|l| l.readers.get(idx)) else {
        log::error!("tcp reader {idx}: no link to the TCP main process");
        return 1;
    };
    let mut rx = Receiver::new(rt);
    // An idle reader wakes up now and then to beat (see check_heartbeats).
    if let Err(e) = rx_sock.set_read_timeout(Some(crate::proc::shared::BEAT_EVERY)) {
        log::warn!("tcp reader {idx}: no receive timeout ({e}): an idle reader looks stalled");
    }
    let mut rbuf = vec![0u8; net::stream::MAX_DATAGRAM];
    let mut spare: Vec<u8> = Vec::with_capacity(4096);
    crate::proc::shared::mark_receiver();
    loop {
        crate::proc::shared::beat();
        let n = match rx_sock.recv(&mut rbuf) {
            Ok(n) => n,
            Err(e) if idle_wakeup(&e) => continue,
            Err(e) => {
                crate::log_limited!(log::Level::Error, "tcp reader {idx}: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let (d, msg) = match net::stream::Delivery::decode(rbuf.get(..n).unwrap_or_default()) {
            Ok(x) => x,
            Err(e) => {
                crate::log_limited!(log::Level::Error, "tcp reader {idx}: {e}");
                continue;
            }
        };
        let Some(sock) = rt.sockets.all().get(usize::from(d.sock)) else {
            continue;
        };
        // Framed by the TCP main process: no kernel arrival stamp, so no
        // queueing delay is claimed for it.
        crate::proc::shared::note_received(None);
        spare.clear();
        spare.extend_from_slice(msg);
        spare = rx.handle(std::mem::take(&mut spare), d.peer, sock);
    }
}

/// The TCP main process: every connection of every TCP/TLS listen
/// address (`net::stream`).
fn tcp_main(rt: &Runtime) -> i32 {
    use std::time::Duration;
    let Some(link) = net::stream::link() else {
        return 1;
    };
    let core = &rt.core;
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    let cfg = net::stream::StreamCfg {
        connection_lifetime: secs(core.tcp_connection_lifetime),
        connect_timeout: secs(core.tcp_connect_timeout.max(1)),
        send_timeout: secs(core.tcp_send_timeout.max(1)),
        max_connections: core.tcp_max_connections as usize,
        max_msg: net::stream::MAX_PAYLOAD,
        incomplete_timeout: secs(core.tcp_msg_read_timeout),
        accept_aliases: core.tcp_accept_aliases,
    };
    let mut listeners = Vec::new();
    for s in rt.sockets.all() {
        if let net::SockIo::Stream(l) = &s.io {
            match l.try_clone() {
                Ok(listener) => listeners.push(net::stream::Listener {
                    sock: s.index,
                    proto: s.proto(),
                    listener,
                    local: s.listen.addr,
                }),
                Err(e) => {
                    log::error!("tcp main: listen socket {}: {e}", s.listen.addr);
                    return 1;
                }
            }
        }
    }
    // SIGTERM ends this process by its default action, as every child;
    // the loop itself never needs to stop. Its counters go to shm for
    // `core.tcp_info`.
    struct Publish;
    impl net::stream::Observer for Publish {
        fn stop(&mut self) -> bool {
            false
        }
        fn stats(&mut self, s: &net::stream::StreamStats) {
            net::stream::shared::publish(s);
        }
    }
    match net::stream::run_observed(
        &cfg,
        listeners,
        link,
        TLS.get(),
        net::stream::slots::shared(),
        &mut Publish,
    ) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("tcp main: {e}");
            1
        }
    }
}
