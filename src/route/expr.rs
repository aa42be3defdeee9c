//! Compiled `if` conditions and their evaluation.
//!
//! Truth follows SER 0.9: an element yields an int, >0 true, <0 false, and
//! 0 stops the whole script (a function that ended processing, e.g. a
//! `t_relay` that already answered). `!` of 0 is still 0.

use std::net::IpAddr;

use regex::bytes::Regex;

use crate::cfg::ast::{CmpOp, Proto};
use crate::route::ctx::MsgCtx;
use crate::route::export::BoxedFn;
use crate::route::interp::{run_list, Action, Flow};
use crate::sip::{parse_uri, Msg};

/// Which string a string test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOperand {
    Method,
    Uri,
    FromUri,
    ToUri,
    /// Reply code in reply routes (0.9 keeps it in the `uri` slot).
    Status,
    SrcIp,
    DstIp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOperand {
    SrcPort,
    DstPort,
    MsgLen,
    Status,
    RetCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpOperand {
    Src,
    Dst,
}

pub enum Cond {
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Const(i32),
    StrEq {
        what: StrOperand,
        val: Vec<u8>,
        negate: bool,
    },
    StrRe {
        what: StrOperand,
        re: Regex,
        negate: bool,
    },
    /// `uri == myself` and friends.
    UriMyself {
        what: StrOperand,
        negate: bool,
    },
    /// `src_ip == myself`.
    IpMyself {
        what: IpOperand,
        negate: bool,
    },
    /// `src_ip == 10.0.0.0/8`, `src_ip == "host"` (resolved at load).
    IpIn {
        what: IpOperand,
        nets: Vec<(IpAddr, u8)>,
        negate: bool,
    },
    Num {
        what: NumOperand,
        op: CmpOp,
        val: i64,
    },
    Proto {
        proto: Proto,
        negate: bool,
    },
    Af {
        af: u8,
        negate: bool,
    },
    Call(BoxedFn),
    Block(Vec<Action>),
}

const TRUE: i32 = 1;
const FALSE: i32 = -1;

fn truth(b: bool) -> i32 {
    if b {
        TRUE
    } else {
        FALSE
    }
}

/// The URI part of From/To.
fn header_uri(msg: &Msg, to: bool) -> Option<&[u8]> {
    let na = if to { msg.to() } else { msg.from() };
    na.ok().map(|na| na.uri.get(msg.buf()))
}

/// The string an operand denotes, or `None` when the message lacks it
/// (SER treats that as an error: the test is false).
fn operand_str<'c>(
    ctx: &'c MsgCtx<'_>,
    what: StrOperand,
    scratch: &'c mut String,
) -> Option<&'c [u8]> {
    match what {
        StrOperand::Method => Some(ctx.msg.method_bytes()),
        StrOperand::Uri => {
            if ctx.msg.is_request() {
                Some(ctx.ruri())
            } else {
                *scratch = ctx.msg.status().to_string();
                Some(scratch.as_bytes())
            }
        }
        StrOperand::Status => {
            *scratch = ctx.msg.status().to_string();
            Some(scratch.as_bytes())
        }
        StrOperand::FromUri => header_uri(ctx.msg, false),
        StrOperand::ToUri => header_uri(ctx.msg, true),
        StrOperand::SrcIp => {
            *scratch = ctx.src.ip().to_string();
            Some(scratch.as_bytes())
        }
        StrOperand::DstIp => {
            *scratch = ctx.rcv.listen.addr.ip().to_string();
            Some(scratch.as_bytes())
        }
    }
}

fn uri_is_myself(ctx: &MsgCtx<'_>, uri: &[u8]) -> bool {
    match parse_uri(uri) {
        Ok(u) => ctx.rt.is_myself(u.host.get(uri), u.port),
        Err(_) => false,
    }
}

fn ip_in(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = u32::from(prefix.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = u32::from(prefix.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => match a.to_ipv4_mapped() {
            Some(v4) => ip_in(IpAddr::V4(v4), net, prefix),
            None => false,
        },
        _ => false,
    }
}

fn num_cmp(a: i64, op: CmpOp, b: i64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Lt => a < b,
        CmpOp::Ge => a >= b,
        CmpOp::Le => a <= b,
        CmpOp::Match => false,
    }
}

impl Cond {
    /// Evaluate: >0 true, <0 false, 0 stop the script.
    pub fn eval(&self, ctx: &mut MsgCtx<'_>) -> i32 {
        match self {
            Cond::Not(c) => match c.eval(ctx) {
                0 => 0,
                r => truth(r < 0),
            },
            Cond::And(a, b) => match a.eval(ctx) {
                r if r <= 0 => r,
                _ => b.eval(ctx),
            },
            Cond::Or(a, b) => match a.eval(ctx) {
                0 => 0,
                r if r > 0 => r,
                _ => b.eval(ctx),
            },
            Cond::Const(v) => *v,
            Cond::StrEq { what, val, negate } => {
                let mut scratch = String::new();
                match operand_str(ctx, *what, &mut scratch) {
                    Some(s) => truth(s.eq_ignore_ascii_case(val) != *negate),
                    None => FALSE,
                }
            }
            Cond::StrRe { what, re, negate } => {
                let mut scratch = String::new();
                match operand_str(ctx, *what, &mut scratch) {
                    Some(s) => truth(re.is_match(s) != *negate),
                    None => FALSE,
                }
            }
            Cond::UriMyself { what, negate } => {
                let mut scratch = String::new();
                let mine = match operand_str(ctx, *what, &mut scratch) {
                    Some(u) => {
                        let u = u.to_vec();
                        uri_is_myself(ctx, &u)
                    }
                    None => return FALSE,
                };
                truth(mine != *negate)
            }
            Cond::IpMyself { what, negate } => {
                let ip = match what {
                    IpOperand::Src => ctx.src.ip(),
                    IpOperand::Dst => ctx.rcv.listen.addr.ip(),
                };
                truth(ctx.rt.is_my_ip(ip) != *negate)
            }
            Cond::IpIn { what, nets, negate } => {
                let ip = match what {
                    IpOperand::Src => ctx.src.ip(),
                    IpOperand::Dst => ctx.rcv.listen.addr.ip(),
                };
                truth(nets.iter().any(|(n, p)| ip_in(ip, *n, *p)) != *negate)
            }
            Cond::Num { what, op, val } => {
                let v: i64 = match what {
                    NumOperand::SrcPort => i64::from(ctx.src.port()),
                    NumOperand::DstPort => i64::from(ctx.rcv.listen.addr.port()),
                    NumOperand::MsgLen => ctx.msg.buf().len() as i64,
                    NumOperand::Status => i64::from(ctx.msg.status()),
                    NumOperand::RetCode => 1,
                };
                truth(num_cmp(v, *op, *val))
            }
            Cond::Proto { proto, negate } => {
                // The transport the message arrived over.
                let is = match proto {
                    Proto::Any => true,
                    Proto::Udp => ctx.rcv.proto() == crate::net::Proto::Udp,
                    Proto::Tcp => ctx.rcv.proto() == crate::net::Proto::Tcp,
                    Proto::Tls => ctx.rcv.proto() == crate::net::Proto::Tls,
                };
                truth(is != *negate)
            }
            Cond::Af { af, negate } => {
                let is = match ctx.src.ip() {
                    IpAddr::V4(_) => *af == 4,
                    IpAddr::V6(_) => *af == 6,
                };
                truth(is != *negate)
            }
            Cond::Call(f) => f.call(ctx),
            Cond::Block(list) => match run_list(list, ctx) {
                Flow::Next(r) => r,
                Flow::Break | Flow::Exit => 0,
                Flow::Return(r) => r,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets_match() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(ip_in(ip, "10.0.0.0".parse().unwrap(), 8));
        assert!(!ip_in(ip, "11.0.0.0".parse().unwrap(), 8));
        assert!(ip_in(ip, "10.1.2.3".parse().unwrap(), 32));
        assert!(ip_in(ip, "0.0.0.0".parse().unwrap(), 0));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(ip_in(v6, "2001:db8::".parse().unwrap(), 32));
        assert!(!ip_in(v6, "10.0.0.0".parse().unwrap(), 8));
    }

    #[test]
    fn numeric_ops() {
        assert!(num_cmp(5, CmpOp::Ge, 5));
        assert!(!num_cmp(5, CmpOp::Gt, 5));
        assert!(num_cmp(4, CmpOp::Ne, 5));
    }
}
