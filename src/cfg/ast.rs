//! Syntax tree of a `ser.cfg` script.
//!
//! The parser (`cfg::parser`) produces this tree and nothing else; module
//! functions are not resolved here — `route::compile` does that against the
//! export registry, so the tree stays independent of which modules exist.
//! Every node that can be the subject of an error carries its [`Pos`].

use std::fmt;

/// A position in the config file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A whole script, items in file order.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub enum Item {
    /// `name = value` (several values for list parameters like `listen`).
    Global {
        name: String,
        value: GlobalValue,
        pos: Pos,
    },
    /// `loadmodule "path"`.
    LoadModule { path: String, pos: Pos },
    /// `loadpath "dir"` (2.x).
    LoadPath { path: String, pos: Pos },
    /// `modparam("module-regex", "param", value)`.
    ModParam {
        module: String,
        param: String,
        value: Literal,
        pos: Pos,
    },
    /// A route block of any kind.
    Route(RouteBlock),
}

/// Right-hand side of a global parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum GlobalValue {
    /// A number, or a yes/no word (`yes true on enable` → 1, `no false off disable` → 0).
    Int(i64),
    /// A quoted string.
    Str(String),
    /// A bare identifier (e.g. `LOG_LOCAL0`, `inet`) or dotted host name.
    Ident(String),
    /// `listen`/`alias` style: whitespace separated `[proto:]addr[:port]` entries.
    Sockets(Vec<SocketSpec>),
}

/// Transport protocol as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
    /// `*` — any protocol.
    Any,
}

/// `[proto:]addr[:port]` from `listen`, `alias`, `-l`, `force_send_socket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub proto: Option<Proto>,
    /// IPv4/IPv6 literal (without brackets), host name, interface name, or `*`.
    pub host: String,
    /// `None` when absent; `Some(0)` for `*`.
    pub port: Option<u16>,
}

/// Which kind of route block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `route {}` / `route[N] {}` — request routing.
    Request,
    /// `failure_route[N]`, and the SER 0.8 name `reply_route[N]`.
    Failure,
    /// `onreply_route[N]` — per-transaction reply route armed by `t_on_reply`.
    OnReply,
    /// `branch_route[N]` (2.x).
    Branch,
    /// `onreply_route {}` without index (2.x): every received reply, before tm.
    CoreReply,
    /// `onsend_route {}` (2.x).
    OnSend,
}

/// `route[1]`, `route[name]`, `route["name"]`, or the unnumbered `route`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteName {
    Num(u32),
    Name(String),
}

#[derive(Debug, Clone)]
pub struct RouteBlock {
    pub kind: RouteKind,
    /// `Num(0)` for an unnumbered block.
    pub name: RouteName,
    /// True when written with the SER 0.8 keyword `reply_route`.
    pub legacy_name: bool,
    pub body: Vec<Stmt>,
    pub pos: Pos,
}

/// A statement.
#[derive(Debug, Clone)]
pub enum Stmt {
    /// A call: core action, module function, or a keyword action
    /// (`drop`, `break`, `return [n]`, `exit [n]`, `route(N)`).
    Call(Call),
    If {
        cond: Expr,
        then: Vec<Stmt>,
        otherwise: Option<Vec<Stmt>>,
        pos: Pos,
    },
    Block(Vec<Stmt>),
    /// 2.x assignment `$avp = value` / `+=`; kept so 2.x scripts parse.
    Assign {
        target: String,
        op: AssignOp,
        value: Expr,
        pos: Pos,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignOp {
    Set,
    Append,
}

/// `name(arg, ...)` or a bare keyword action such as `drop`/`break`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// As written (`t_relay`, `sl_send_reply`, `drop`, `route` ...).
    pub name: String,
    pub args: Vec<Literal>,
    /// True when written with parentheses (`drop()` vs `drop`).
    pub parens: bool,
    pub pos: Pos,
}

/// An argument or literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    /// Unquoted identifier, dotted host name, or words like `uri:host`,
    /// `max_len`, `udp`, `inet`, `myself`.
    Ident(String),
    /// IPv4 or IPv6 address literal (written without quotes).
    Ip(std::net::IpAddr),
}

/// Condition of an `if`.
#[derive(Debug, Clone)]
pub enum Expr {
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `lhs op rhs`, or `rhs op lhs` with the operand on the right
    /// (`myself == uri` is normalised to `uri == myself`).
    Cmp {
        lhs: Operand,
        op: CmpOp,
        rhs: Rhs,
        pos: Pos,
    },
    /// A call used as a condition: its return value decides.
    Call(Call),
    /// `{ ... }` or `if` used as a condition is unusual but legal in 0.9.
    Block(Vec<Stmt>),
    /// A bare number: non-zero is true.
    Int(i64),
    /// 2.x: `$avp`, `@select`, `$retcode` used as a value or test.
    Var(String),
}

/// Left side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Method,
    Uri,
    /// `status` — in reply routes the reply code (0.9 shares the slot with `uri`).
    Status,
    FromUri,
    ToUri,
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
    Proto,
    Af,
    MsgLen,
    /// 2.x onsend operands.
    SndIp,
    SndPort,
    SndProto,
    SndAf,
    ToIp,
    ToPort,
    /// 2.x `$retcode` / `$?`.
    RetCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    /// `=~` POSIX extended, case-insensitive.
    Match,
    Gt,
    Lt,
    Ge,
    Le,
}

/// Right side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Rhs {
    Str(String),
    Int(i64),
    /// Unquoted host name or identifier.
    Ident(String),
    Myself,
    /// `max_len` (the maximum message length, 65535).
    MaxLen,
    /// `ip`, `ip/bits` or `ip/mask`.
    Net {
        addr: std::net::IpAddr,
        prefix: u8,
    },
    Proto(Proto),
    /// `inet` / `inet6`.
    Af(u8),
}
