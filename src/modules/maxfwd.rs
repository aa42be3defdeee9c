//! maxfwd — `mf_process_maxfwd_header("N")`.
//!
//! Absent header: add `Max-Forwards: N`. Zero: return −1 so the script can
//! answer 483. Otherwise clamp to `max_limit` (0 = no clamp) and decrement.
//! An unparsable value is left alone (returns 1), as SER does.

use crate::cfg::ast::Literal;
use crate::route::export::{
    arg_int_range, BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;
use crate::sip::HdrKind;

pub struct MaxFwd {
    max_limit: u32,
}

impl Default for MaxFwd {
    fn default() -> Self {
        MaxFwd { max_limit: 16 }
    }
}

static FUNCS: &[FnDef] = &[FnDef::new(
    "mf_process_maxfwd_header",
    1,
    1,
    RouteMask::REQ_FAIL,
)];

/// The new value for a received Max-Forwards, or `None` for "exhausted".
pub fn next_value(received: u32, max_limit: u32) -> Option<u32> {
    if received == 0 {
        return None;
    }
    let v = if max_limit > 0 && received > max_limit {
        max_limit
    } else {
        received
    };
    Some(v - 1)
}

impl Module for MaxFwd {
    fn name(&self) -> &'static str {
        "maxfwd"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match (param, value) {
            ("max_limit", Literal::Int(n)) if (0..=255).contains(n) => {
                self.max_limit = *n as u32;
                Ok(())
            }
            ("max_limit", _) => Err(ParamError::BadType {
                module: "maxfwd",
                param: param.into(),
                expected: "an integer 0..255",
            }),
            _ => Err(super::no_params("maxfwd", param)),
        }
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let hi = if self.max_limit > 0 {
            i64::from(self.max_limit)
        } else {
            255
        };
        let initial = arg_int_range(f.name, args, 0, 0, hi, "a number within max_limit")? as u32;
        let limit = self.max_limit;
        Ok(Box::new(move |ctx: &mut MsgCtx<'_>| {
            let msg = ctx.msg;
            let Some(h) = msg.header(HdrKind::MaxForwards).copied() else {
                let line = format!("Max-Forwards: {initial}\r\n");
                ctx.lumps.insert(msg.headers_end(), line.as_bytes());
                return 1;
            };
            match msg.max_forwards() {
                Ok(Some(v)) => match next_value(v, limit) {
                    None => -1,
                    Some(n) => {
                        ctx.lumps.replace(h.value, n.to_string().as_bytes());
                        1
                    }
                },
                _ => 1,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrement_and_clamp() {
        assert_eq!(next_value(0, 16), None);
        assert_eq!(next_value(1, 16), Some(0));
        assert_eq!(next_value(70, 16), Some(15));
        assert_eq!(next_value(70, 0), Some(69));
    }
}
