//! print — `print("text")` writes the text and a newline to stdout (SER
//! 0.9's example module `modules/print`, `printf("%s\n", str)`), from the
//! request route only.
//!
//! The text comes from the config, so it is written as it is. One
//! `write(2)` per call and no stdio buffer: SER's `printf` sat in a
//! process's buffer until it filled, so lines of several processes came
//! out late and interleaved. 0.9's `str_param`/`int_param` were example
//! parameters that did nothing; they are accepted and likewise unused, so
//! its configs still load.

use std::io::Write;

use crate::cfg::ast::Literal;
use crate::route::export::{
    arg_str, BoxedFn, FixupEnv, FixupError, FnDef, Module, ParamError, RouteMask,
};
use crate::route::MsgCtx;

pub struct Print;

static FUNCS: &[FnDef] = &[FnDef::new("print", 1, 1, RouteMask::REQUEST)];

impl Module for Print {
    fn name(&self) -> &'static str {
        "print"
    }

    fn functions(&self) -> &'static [FnDef] {
        FUNCS
    }

    fn set_param(&mut self, param: &str, value: &Literal) -> Result<(), ParamError> {
        match (param, value) {
            ("str_param", Literal::Str(_)) | ("int_param", Literal::Int(_)) => Ok(()),
            ("str_param" | "int_param", _) => Err(ParamError::BadType {
                module: "print",
                param: param.into(),
                expected: if param == "str_param" {
                    "a string"
                } else {
                    "an integer"
                },
            }),
            _ => Err(super::no_params("print", param)),
        }
    }

    fn fixup(
        &self,
        f: &FnDef,
        args: &[Literal],
        _env: &FixupEnv<'_>,
    ) -> Result<BoxedFn, FixupError> {
        let mut line = arg_str(f.name, args, 0)?.into_bytes();
        line.push(b'\n');
        Ok(Box::new(move |_ctx: &mut MsgCtx<'_>| {
            // A closed stdout is not the script's failure: SER's printf
            // ignored it too.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&line).and_then(|()| out.flush());
            1
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_params_are_accepted_and_others_refused() {
        let mut p = Print;
        assert!(p.set_param("str_param", &Literal::Str("x".into())).is_ok());
        assert!(p.set_param("int_param", &Literal::Int(3)).is_ok());
        assert!(p.set_param("int_param", &Literal::Str("x".into())).is_err());
        assert!(p.set_param("bogus", &Literal::Int(1)).is_err());
    }

    #[test]
    fn print_is_for_the_request_route_only() {
        use crate::cfg::ast::RouteKind;
        let k = FUNCS[0].kinds;
        assert!(k.allows(RouteKind::Request));
        assert!(!k.allows(RouteKind::Failure));
        assert!(!k.allows(RouteKind::OnReply));
    }
}
