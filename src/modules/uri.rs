//! uri — SER 0.9's URI checks: `is_user("name")` (the digest username
//! that authorized the request), `has_totag()` (an in-dialog request),
//! `uri_param("name"[, "value"])` and `add_uri_param("name=value")` on the
//! Request-URI, and `tel2sip()` (a `tel:` Request-URI becomes
//! `sip:<number>@<From host>;user=phone`; `tel2sip` joined the module
//! after the 0.9.0 snapshot, in the same series). Request route only, as
//! SER exported them. The module has no parameters.
//!
//! The URI work is done by pure functions over bytes ([`uri_param`],
//! [`add_uri_param`], [`tel2sip`]), tested below without a message.

use crate::cfg::ast::Literal;
use crate::route::export::{arg_str, BoxedFn, FixupEnv, FixupError, FnDef, Module, RouteMask};
use crate::route::uri_ops::MAX_URI;
use crate::route::MsgCtx;
use crate::sip::uri::{parse_uri, Scheme};

#[derive(Debug, Default)]
pub struct Uri;

static FUNCS: &[FnDef] = &[
    FnDef::new("is_user", 1, 1, RouteMask::REQUEST),
    FnDef::new("has_totag", 0, 0, RouteMask::REQUEST),
    FnDef::new("uri_param", 1, 2, RouteMask::REQUEST),
    FnDef::new("add_uri_param", 1, 1, RouteMask::REQUEST),
    FnDef::new("tel2sip", 0, 0, RouteMask::REQUEST),
];

/// Whether `uri`'s parameters hold `name` (compared exactly, as SER's
/// `strncmp`) with exactly `value`, or — without a value — with no value.
/// The first parameter of that name decides. `None`: not a URI.
pub fn uri_param(uri: &[u8], name: &[u8], value: Option<&[u8]>) -> Option<bool> {
    let u = parse_uri(uri).ok()?;
    let params = u.params.get(uri);
    for p in params.split(|&c| c == b';').filter(|p| !p.is_empty()) {
        let (n, v) = match p.iter().position(|&c| c == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[p.len()..]),
        };
        if n.trim_ascii() != name {
            continue;
        }
        let v = v.trim_ascii();
        return Some(match value {
            Some(want) => v == want,
            None => v.is_empty(),
        });
    }
    Some(false)
}

/// Why a Request-URI could not be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("the Request-URI does not parse")]
    BadUri,
    #[error("the new Request-URI would be longer than {MAX_URI} bytes")]
    TooLong,
    #[error("the From URI has no host")]
    NoFromHost,
}

/// `uri` with `;param` added after its parameters (before any `?headers`).
/// SER 0.9 rebuilt the URI with a `sip:` scheme when it had headers (and
/// lost the user there: a bug); the scheme and user are kept here.
pub fn add_uri_param(uri: &[u8], param: &[u8]) -> Result<Vec<u8>, UriError> {
    let u = parse_uri(uri).map_err(|_| UriError::BadUri)?;
    if param.is_empty() {
        return Ok(uri.to_vec());
    }
    let at = if u.headers.get(uri).is_empty() {
        uri.len()
    } else {
        // The `?` right before the headers.
        (u.headers.start as usize).saturating_sub(1)
    };
    let mut out = Vec::with_capacity(uri.len() + param.len() + 1);
    out.extend_from_slice(&uri[..at]);
    out.push(b';');
    out.extend_from_slice(param);
    out.extend_from_slice(&uri[at..]);
    if out.len() > MAX_URI {
        return Err(UriError::TooLong);
    }
    Ok(out)
}

/// A `tel:` URI as `sip:<rest>@<from_host>;user=phone` (SER copies
/// everything after `tel:`, parameters included); `Ok(None)` when `uri`
/// is not a tel URI, which SER counts as success.
pub fn tel2sip(uri: &[u8], from_host: &[u8]) -> Result<Option<Vec<u8>>, UriError> {
    let Some(rest) = uri
        .get(4..)
        .filter(|_| uri[..4].eq_ignore_ascii_case(b"tel:"))
    else {
        return Ok(None);
    };
    if from_host.is_empty() {
        return Err(UriError::NoFromHost);
    }
    let mut out = Vec::with_capacity(rest.len() + from_host.len() + 20);
    out.extend_from_slice(b"sip:");
    out.extend_from_slice(rest);
    out.push(b'@');
    out.extend_from_slice(from_host);
    out.extend_from_slice(b";user=phone");
    if out.len() > MAX_URI {
        return Err(UriError::TooLong);
    }
    Ok(Some(out))
}

fn truth(b: bool) -> i32 {
    if b {
        1
    } else {
        -1
    }
}

fn has_totag(ctx: &MsgCtx<'_>) -> bool {
    ctx.msg
        .to()
        .ok()
        .and_then(|to| to.tag)
        .is_some_and(|t| !t.get(ctx.msg.buf()).is_empty())
}

fn from_host(ctx: &MsgCtx<'_>) -> Option<Vec<u8>> {
    let msg = ctx.msg;
    let na = msg.from().ok()?;
    let uri = na.uri.get(msg.buf());
    let u = parse_uri(uri).ok()?;
    (u.scheme != Scheme::Tel).then(|| u.host.get(uri).to_vec())
}

impl Module for Uri {
    fn name(&self) -> &'static str {
        "uri"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        Ok(match f.name {
            "is_user" => {
                let user = arg_str(f.name, args, 0)?;
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    // SER: no authorized credentials is an error in the
                    // script (is_user before *_authorize): false.
                    match super::auth::authorized_user(ctx) {
                        Some((u, _realm)) => truth(!u.is_empty() && u == user),
                        None => -1,
                    }
                })
            }
            "has_totag" => Box::new(|ctx: &mut MsgCtx<'_>| truth(has_totag(ctx))),
            "uri_param" => {
                let name = arg_str(f.name, args, 0)?.into_bytes();
                let value = match args.len() {
                    2 => Some(arg_str(f.name, args, 1)?.into_bytes()),
                    _ => None,
                };
                Box::new(move |ctx: &mut MsgCtx<'_>| {
                    match uri_param(ctx.ruri(), &name, value.as_deref()) {
                        Some(b) => truth(b),
                        None => -1,
                    }
                })
            }
            "add_uri_param" => {
                let param = arg_str(f.name, args, 0)?.into_bytes();
                Box::new(
                    move |ctx: &mut MsgCtx<'_>| match add_uri_param(ctx.ruri(), &param) {
                        Ok(u) => {
                            ctx.new_uri = Some(u);
                            1
                        }
                        Err(e) => {
                            crate::warn_limited!("add_uri_param: {e}");
                            -1
                        }
                    },
                )
            }
            "tel2sip" => Box::new(|ctx: &mut MsgCtx<'_>| {
                let host = from_host(ctx).unwrap_or_default();
                match tel2sip(ctx.ruri(), &host) {
                    Ok(None) => 1,
                    Ok(Some(u)) => {
                        ctx.new_uri = Some(u);
                        1
                    }
                    Err(e) => {
                        crate::warn_limited!("tel2sip: {e}");
                        -1
                    }
                }
            }),
            _ => {
                return Err(FixupError::Unavailable {
                    func: f.name,
                    reason: "not a function of the uri module",
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_param_with_and_without_value() {
        let u = b"sip:bob@example.com;transport=udp;lr;user=phone";
        assert_eq!(uri_param(u, b"lr", None), Some(true));
        assert_eq!(uri_param(u, b"transport", Some(b"udp")), Some(true));
        assert_eq!(uri_param(u, b"transport", Some(b"tcp")), Some(false));
        // A parameter with a value is not "present without one".
        assert_eq!(uri_param(u, b"transport", None), Some(false));
        assert_eq!(uri_param(u, b"lr", Some(b"1")), Some(false));
        assert_eq!(uri_param(u, b"maddr", None), Some(false));
        // Names compare exactly, as SER's strncmp did.
        assert_eq!(uri_param(u, b"LR", None), Some(false));
        // Headers are not parameters.
        assert_eq!(uri_param(b"sip:a@b?lr", b"lr", None), Some(false));
        assert_eq!(uri_param(b"not a uri", b"lr", None), None);
    }

    #[test]
    fn add_uri_param_goes_before_headers() {
        assert_eq!(
            add_uri_param(b"sip:bob@example.com", b"x=1").unwrap(),
            b"sip:bob@example.com;x=1"
        );
        assert_eq!(
            add_uri_param(b"sips:bob:pw@example.com:5061;lr?Subject=hi", b"x=1").unwrap(),
            b"sips:bob:pw@example.com:5061;lr;x=1?Subject=hi"
        );
        assert_eq!(
            add_uri_param(b"sip:example.com", b"").unwrap(),
            b"sip:example.com"
        );
        assert_eq!(add_uri_param(b"junk", b"x"), Err(UriError::BadUri));
        let long = vec![b'a'; MAX_URI];
        assert_eq!(
            add_uri_param(b"sip:example.com", &long),
            Err(UriError::TooLong)
        );
    }

    #[test]
    fn tel2sip_uses_the_from_host() {
        assert_eq!(
            tel2sip(b"tel:+4930123", b"example.com").unwrap(),
            Some(b"sip:+4930123@example.com;user=phone".to_vec())
        );
        assert_eq!(
            tel2sip(b"TEL:555;phone-context=x", b"h").unwrap(),
            Some(b"sip:555;phone-context=x@h;user=phone".to_vec())
        );
        assert_eq!(tel2sip(b"sip:bob@example.com", b"h").unwrap(), None);
        assert_eq!(tel2sip(b"tel", b"h").unwrap(), None);
        assert_eq!(tel2sip(b"tel:1", b""), Err(UriError::NoFromHost));
    }
}
