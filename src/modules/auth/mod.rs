//! auth — SER 0.9's digest authentication core: `www_challenge(realm,
//! qop)`, `proxy_challenge(realm, qop)`, `consume_credentials()`, and the
//! check behind `www_authorize`/`proxy_authorize`, which a credentials
//! backend (auth_db) calls with its lookup ([`authorize`]).
//!
//! Parameters: `secret` (the nonce key; random per start when unset, so
//! nonces do not survive a restart, as in SER), `nonce_expire`
//! (seconds, 300), `rpid_prefix` and `rpid_suffix`. Nonces: [`nonce`]; RFC 2617 arithmetic: [`digest`].
//! SER's Remote-Party-ID helpers: `append_rpid_hf([prefix, suffix])`
//! adds the authorized subscriber's RPID (from auth_db's `rpid_column`)
//! between `rpid_prefix` and `rpid_suffix`; `is_rpid_user_e164()` asks
//! whether its user is an E.164 number.

pub mod digest;
pub mod nonce;

use std::sync::OnceLock;

use crate::cfg::ast::Literal;
use crate::modules::sl::{send_reply, LocalReply};
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, ModInitError, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;
use crate::sip::{Method, Msg};

use digest::Qop;
use nonce::{Check, NcError, Nonces};

#[derive(Debug)]
pub struct Auth {
    secret: Option<String>,
    nonce_expire: u32,
    rpid_prefix: String,
    rpid_suffix: String,
}

/// SER 0.9's default `rpid_suffix`.
const RPID_SUFFIX: &str = ";party=calling;id-type=subscriber;screen=yes";

impl Default for Auth {
    fn default() -> Self {
        Auth {
            secret: None,
            nonce_expire: 300,
            rpid_prefix: String::new(),
            rpid_suffix: RPID_SUFFIX.into(),
        }
    }
}

/// Set once in the supervisor (`mod_init`), read by every process.
struct Shared {
    nonces: Nonces,
    expire: u32,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// Whether auth is loaded (a backend refuses to load without it, as in
/// SER, where auth_db needed auth's API).
pub fn loaded() -> bool {
    SHARED.get().is_some()
}

static FUNCS: &[FnDef] = &[
    FnDef::new("www_challenge", 2, 2, RouteMask::REQUEST),
    FnDef::new("proxy_challenge", 2, 2, RouteMask::REQUEST),
    FnDef::new("consume_credentials", 0, 0, RouteMask::REQUEST),
    FnDef::new("append_rpid_hf", 0, 2, RouteMask::REQ_FAIL),
    FnDef::new("is_rpid_user_e164", 0, 0, RouteMask::REQ_FAIL),
];

/// Which header pair: `WWW-Authenticate`/`Authorization` (a registrar or
/// UAS, 401) or `Proxy-Authenticate`/`Proxy-Authorization` (a proxy, 407).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Www,
    Proxy,
}

impl Kind {
    fn credentials_header(self) -> &'static [u8] {
        match self {
            Kind::Www => b"Authorization",
            Kind::Proxy => b"Proxy-Authorization",
        }
    }
}

impl Module for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match (param, value) {
            ("secret", Literal::Str(s)) if !s.is_empty() => {
                self.secret = Some(s.clone());
                Ok(())
            }
            ("secret", _) => Err(ParamError::BadType {
                module: "auth",
                param: param.into(),
                expected: "a non-empty string",
            }),
            ("nonce_expire", Literal::Int(n)) if (1..=86_400).contains(n) => {
                self.nonce_expire = *n as u32;
                Ok(())
            }
            ("nonce_expire", _) => Err(ParamError::BadType {
                module: "auth",
                param: param.into(),
                expected: "seconds, 1..86400",
            }),
            ("rpid_prefix", Literal::Str(s)) => {
                self.rpid_prefix = s.clone();
                Ok(())
            }
            ("rpid_suffix", Literal::Str(s)) => {
                self.rpid_suffix = s.clone();
                Ok(())
            }
            ("rpid_prefix" | "rpid_suffix", _) => Err(ParamError::BadType {
                module: "auth",
                param: param.into(),
                expected: "a string",
            }),
            _ => Err(super::no_params("auth", param)),
        }
    }

    fn mod_init(
        &self,
        _rt: &'static crate::route::Runtime,
        region: &'static shm::Region,
    ) -> Result<(), ModInitError> {
        let err = |reason: String| ModInitError {
            module: "auth",
            reason,
        };
        nonce::init(region).map_err(|e| err(format!("nonce counts in shared memory: {e}")))?;
        let nonces = Nonces::new(self.secret.as_deref())
            .map_err(|e| err(format!("random nonce secret: {e}")))?;
        let _ = SHARED.set(Shared {
            nonces,
            expire: self.nonce_expire,
        });
        Ok(())
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        match f.name {
            "consume_credentials" => Ok(Box::new(consume_credentials)),
            "is_rpid_user_e164" => Ok(Box::new(|ctx: &mut MsgCtx<'_>| {
                if ctx.auth.rpid.as_deref().is_some_and(rpid_is_e164) {
                    1
                } else {
                    -1
                }
            })),
            "append_rpid_hf" => {
                if args.len() == 1 {
                    return Err(FixupError::BadArg {
                        func: f.name,
                        index: 1,
                        expected: "no arguments, or a prefix and a suffix",
                        found: "one argument".into(),
                    });
                }
                let (prefix, suffix) = if args.len() == 2 {
                    (arg_str(f.name, args, 0)?, arg_str(f.name, args, 1)?)
                } else {
                    (self.rpid_prefix.clone(), self.rpid_suffix.clone())
                };
                if prefix.contains(['\r', '\n']) || suffix.contains(['\r', '\n']) {
                    return Err(FixupError::BadArg {
                        func: f.name,
                        index: 0,
                        expected: "a prefix and suffix without line breaks",
                        found: "a line break".into(),
                    });
                }
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    let Some(rpid) = ctx.auth.rpid.clone() else {
                        return -1;
                    };
                    let line = format!("Remote-Party-ID: {prefix}{rpid}{suffix}\r\n");
                    ctx.lumps.insert(ctx.msg.headers_end(), line.as_bytes());
                    1
                }))
            }
            name => {
                let kind = if name == "www_challenge" {
                    Kind::Www
                } else {
                    Kind::Proxy
                };
                let realm = arg_str(f.name, args, 0)?;
                let qop = match arg_str(f.name, args, 1)?.as_str() {
                    "0" => false,
                    "1" => true,
                    other => {
                        return Err(FixupError::BadArg {
                            func: f.name,
                            index: 1,
                            expected: "qop \"0\" or \"1\"",
                            found: other.to_string(),
                        })
                    }
                };
                Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
                    challenge(ctx, kind, &realm, qop)
                }))
            }
        }
    }
}

fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// The realm to use: the argument, or when empty the host of To for a
/// REGISTER and of From otherwise (SER's rule).
pub fn realm_of(msg: &Msg, arg: &str) -> Option<String> {
    if !arg.is_empty() {
        return Some(arg.to_string());
    }
    let na = if msg.method() == Method::Register {
        msg.to().ok()?
    } else {
        msg.from().ok()?
    };
    let raw = na.uri.get(msg.buf());
    let uri = crate::sip::uri::parse_uri(raw).ok()?;
    std::str::from_utf8(uri.host.get(raw))
        .ok()
        .map(str::to_string)
}

/// `www_challenge`/`proxy_challenge`: a 401/407 with a fresh nonce
/// (`stale=true` when the credentials were only out of date), sent
/// statelessly. 1 once sent (the script then says `break`), -1 if not.
fn challenge(ctx: &mut MsgCtx<'_>, kind: Kind, realm_arg: &str, qop: bool) -> i32 {
    let Some(shared) = SHARED.get() else {
        return -1;
    };
    let Some(realm) = realm_of(ctx.msg, realm_arg) else {
        crate::warn_limited!("auth: no realm for the challenge (no From/To host)");
        return -1;
    };
    let Some(table) = nonce::table() else {
        return -1;
    };
    let expires = now_secs().saturating_add(shared.expire);
    let nid = table.issue(expires);
    let n = shared.nonces.make(expires, nid);
    let (code, reason, name): (u16, &[u8], &str) = match kind {
        Kind::Www => (401, b"Unauthorized", "WWW-Authenticate"),
        Kind::Proxy => (407, b"Proxy Authentication Required", "Proxy-Authenticate"),
    };
    let mut hdr = format!("{name}: Digest realm=\"{realm}\", nonce=\"{n}\"");
    if qop {
        hdr.push_str(", qop=\"auth\"");
    }
    if ctx.auth.stale {
        hdr.push_str(", stale=true");
    }
    hdr.push_str(", algorithm=MD5\r\n");
    let r = LocalReply {
        code,
        reason,
        extra: hdr.as_bytes(),
        new_uri: None,
        force_rport: false,
    };
    match send_reply(ctx.rt, ctx.msg, ctx.src, ctx.rcv, &r) {
        Ok(()) => 1,
        Err(e) => {
            crate::warn_limited!("auth: {code} challenge not sent: {e}");
            -1
        }
    }
}

/// `consume_credentials()`: removes the credentials that authorized the
/// request, so they do not travel on to the next hop.
fn consume_credentials(ctx: &mut MsgCtx<'_>) -> i32 {
    match ctx.auth.used {
        Some(line) if !ctx.auth.consumed => {
            ctx.lumps.delete(line);
            ctx.auth.consumed = true;
            1
        }
        _ => -1,
    }
}

/// Whether a Remote-Party-ID's user is an E.164 number (`+` and 1..15
/// digits), in a URI (`<sip:+4930…@host>`, `sip:…`, `tel:…`) or bare.
pub fn rpid_is_e164(rpid: &str) -> bool {
    let inner = match (rpid.find('<'), rpid.find('>')) {
        (Some(a), Some(b)) if a < b => &rpid[a + 1..b],
        _ => rpid,
    };
    let after_scheme = ["sip:", "sips:", "tel:"]
        .iter()
        .find_map(|s| {
            inner
                .get(..s.len())
                .filter(|p| p.eq_ignore_ascii_case(s))
                .map(|_| &inner[s.len()..])
        })
        .unwrap_or(inner);
    let user = after_scheme
        .split(['@', ';', '>'])
        .next()
        .unwrap_or_default();
    let digits = user.strip_prefix('+').unwrap_or("");
    (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// What a backend found for a username: the secret, and the
/// subscriber's Remote-Party-ID if it keeps one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub secret: Secret,
    pub rpid: Option<String>,
}

/// How a subscriber's secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// HA1 as stored (SER's `ha1` / `ha1b` columns).
    Ha1(String),
    /// The plain password (`calculate_ha1`): HA1 is computed here.
    Password(String),
}

/// Why a backend could not answer (its own log line says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupFailed;

/// The user part and domain part of a digest username (`alice` or
/// `alice@example.com`, whose HA1 SER keeps in `ha1b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestUser<'a> {
    pub user: &'a str,
    pub domain: Option<&'a str>,
    /// The whole username as the client hashed it.
    pub full: &'a str,
}

/// A backend's answer for a digest user in a realm: its secret, none
/// (unknown user), or a failure to ask.
pub type Lookup<'a> = dyn FnMut(&DigestUser<'_>, &str) -> Result<Option<Found>, LookupFailed> + 'a;

/// SER's return codes of `www_authorize`/`proxy_authorize` (a negative
/// value is false in the script).
pub mod code {
    pub const AUTHORIZED: i32 = 1;
    pub const ERROR: i32 = -1;
    pub const INVALID_PASSWORD: i32 = -2;
    pub const USER_UNKNOWN: i32 = -3;
    pub const STALE_NONCE: i32 = -4;
    pub const NO_CREDENTIALS: i32 = -5;
    pub const NONCE_REUSED: i32 = -6;
    /// Answered here (400 for malformed credentials, 500 when the
    /// database did not answer): the script ends.
    pub const ANSWERED: i32 = 0;
}

/// `www_authorize`/`proxy_authorize` with `lookup` as the source of
/// secrets: finds the credentials for the realm, checks the nonce and
/// then the response, and only then the nonce count (so forged requests
/// cannot burn a client's counts). A malformed credential is answered
/// 400 and ends the script (0), as SER did; so does a backend that is
/// down (500).
pub fn authorize(
    ctx: &mut MsgCtx<'_>,
    kind: Kind,
    realm_arg: &str,
    lookup: &mut Lookup<'_>,
) -> i32 {
    let Some(shared) = SHARED.get() else {
        return code::ERROR;
    };
    let msg = ctx.msg;
    let Some(realm) = realm_of(msg, realm_arg) else {
        return code::ERROR;
    };
    // The first credentials of our kind for this realm.
    let mut found = None;
    for h in msg.headers() {
        if !h
            .name
            .get(msg.buf())
            .eq_ignore_ascii_case(kind.credentials_header())
        {
            continue;
        }
        let Ok(text) = std::str::from_utf8(h.value.get(msg.buf())) else {
            continue;
        };
        match digest::parse(text) {
            Ok(c) if c.realm == realm => {
                found = Some((c, h.line));
                break;
            }
            Ok(_) | Err(digest::DigestError::NotDigest) => {}
            Err(e) => {
                crate::log_limited!(
                    log::Level::Info,
                    "auth: malformed credentials from {}: {e}",
                    ctx.src
                );
                reply(ctx, 400, b"Bad Request (malformed credentials)");
                return code::ANSWERED;
            }
        }
    }
    let Some((cred, line)) = found else {
        return code::NO_CREDENTIALS;
    };
    let (expires, nid) = match shared.nonces.check(cred.nonce, now_secs()) {
        Check::Fresh { expires, nid } => (expires, nid),
        Check::Stale => {
            ctx.auth.stale = true;
            return code::STALE_NONCE;
        }
        Check::Foreign => {
            crate::log_limited!(
                log::Level::Info,
                "auth: a nonce we did not issue from {}",
                ctx.src
            );
            return code::ERROR;
        }
    };
    let user = split_user(cred.username);
    let Found { secret, rpid } = match lookup(&user, &realm) {
        Ok(Some(f)) => f,
        Ok(None) => return code::USER_UNKNOWN,
        Err(LookupFailed) => {
            reply(ctx, 500, b"Server Internal Error (authentication database)");
            return code::ANSWERED;
        }
    };
    let ha1 = match secret {
        Secret::Ha1(h) => h,
        Secret::Password(p) => digest::ha1(user.full, &realm, &p),
    };
    let method = String::from_utf8_lossy(msg.method_bytes());
    if !cred.verify(&ha1, &method) {
        return code::INVALID_PASSWORD;
    }
    if cred.qop == Qop::Auth {
        let (Some(nc), Some(t)) = (cred.nc_value(), nonce::table()) else {
            return code::ERROR;
        };
        match t.accept(expires, nid, nc) {
            Ok(()) => {}
            Err(NcError::Replay) => {
                crate::log_limited!(
                    log::Level::Info,
                    "auth: replayed nonce count from {}",
                    ctx.src
                );
                return code::NONCE_REUSED;
            }
            Err(NcError::Reused) => {
                ctx.auth.stale = true;
                return code::STALE_NONCE;
            }
        }
    }
    ctx.auth.used = Some(line);
    ctx.auth.rpid = rpid;
    code::AUTHORIZED
}

/// The user and domain of the credentials that authorized the request
/// (the domain part of a `user@domain` username, else the realm), for
/// group's `is_user_in("Credentials", …)` and uri_db's checks.
pub fn authorized_user(ctx: &MsgCtx<'_>) -> Option<(String, String)> {
    let line = ctx.auth.used?;
    let text = std::str::from_utf8(line.get(ctx.msg.buf())).ok()?;
    let value = text.split_once(':')?.1.trim();
    let c = digest::parse(value).ok()?;
    let u = split_user(c.username);
    Some((
        u.user.to_string(),
        u.domain.unwrap_or(c.realm).to_ascii_lowercase(),
    ))
}

fn split_user(full: &str) -> DigestUser<'_> {
    match full.split_once('@') {
        Some((user, domain)) => DigestUser {
            user,
            domain: Some(domain),
            full,
        },
        None => DigestUser {
            user: full,
            domain: None,
            full,
        },
    }
}

fn reply(ctx: &MsgCtx<'_>, code: u16, reason: &[u8]) {
    let r = LocalReply {
        code,
        reason,
        extra: b"",
        new_uri: None,
        force_rport: false,
    };
    if let Err(e) = send_reply(ctx.rt, ctx.msg, ctx.src, ctx.rcv, &r) {
        crate::warn_limited!("auth: {code} not sent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::rpid_is_e164;

    #[test]
    fn e164_rpids() {
        for yes in [
            "<sip:+420123456789@example.com>",
            "sip:+1@x",
            "tel:+4930123",
            "+123456789012345",
            "\"A\" <sip:+49@h;user=phone>",
        ] {
            assert!(rpid_is_e164(yes), "{yes}");
        }
        for no in [
            "<sip:420123@example.com>",
            "sip:+@x",
            "+1234567890123456",
            "sip:+12a@x",
            "",
            "<sip:alice@x>",
        ] {
            assert!(!rpid_is_e164(no), "{no}");
        }
    }
}
