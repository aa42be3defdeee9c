//! Running compiled route blocks.
//!
//! SER 0.9 semantics (ser-compat-spec §1.5): every action returns an int;
//! >0 and <0 continue, 0 ends the current route. `drop` and `break` end the
//! > current route; `route(N)` turns that end into 1 for its caller (so
//! > `break` in `route[1]` returns to the caller). 2.x `exit` ends the whole
//! > script and `return [n]` leaves the current route with n.

use crate::route::ctx::MsgCtx;
use crate::route::export::BoxedFn;
use crate::route::expr::Cond;

/// Deepest `route(N)` nesting, as in SER.
pub const MAX_ROUTE_DEPTH: u32 = 100;

pub enum Action {
    Call(BoxedFn),
    /// `drop`, `break`: end the current route with 0.
    Break,
    /// 2.x `exit [n]`: end the script.
    Exit,
    /// 2.x `return [n]`.
    Return(i32),
    /// `route(N)`: index into the request-route table.
    Route(usize),
    If {
        cond: Cond,
        then: Vec<Action>,
        otherwise: Vec<Action>,
    },
    Block(Vec<Action>),
}

/// How a list of actions ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Ran to its end; the value of the last action.
    Next(i32),
    /// `drop`/`break`/a function returning 0: end the current route.
    Break,
    /// `return n`: end the current route with n.
    Return(i32),
    /// `exit`: end the whole script.
    Exit,
}

pub fn run_list(list: &[Action], ctx: &mut MsgCtx<'_>) -> Flow {
    let mut last = 1;
    for a in list {
        match run_action(a, ctx) {
            Flow::Next(r) => last = r,
            other => return other,
        }
    }
    Flow::Next(last)
}

fn run_action(a: &Action, ctx: &mut MsgCtx<'_>) -> Flow {
    match a {
        Action::Call(f) => match f.call(ctx) {
            0 => Flow::Break,
            r => Flow::Next(r),
        },
        Action::Break => Flow::Break,
        Action::Exit => Flow::Exit,
        Action::Return(n) => Flow::Return(*n),
        Action::Route(idx) => call_route(*idx, ctx),
        Action::If {
            cond,
            then,
            otherwise,
        } => match cond.eval(ctx) {
            0 => Flow::Break,
            r if r > 0 => run_list(then, ctx),
            _ => run_list(otherwise, ctx),
        },
        Action::Block(list) => run_list(list, ctx),
    }
}

fn call_route(idx: usize, ctx: &mut MsgCtx<'_>) -> Flow {
    if ctx.depth >= MAX_ROUTE_DEPTH {
        log::error!("route({idx}): too many nested routes (max {MAX_ROUTE_DEPTH})");
        return Flow::Next(-1);
    }
    let rt = ctx.rt;
    let Some(list) = rt.routes.request.get(idx) else {
        return Flow::Next(1);
    };
    ctx.depth += 1;
    let flow = run_list(list, ctx);
    ctx.depth -= 1;
    match flow {
        Flow::Next(r) | Flow::Return(r) => Flow::Next(if r == 0 { 1 } else { r }),
        Flow::Break => Flow::Next(1),
        Flow::Exit => Flow::Exit,
    }
}

/// Run a top-level block (main route, failure route ...). Returns the
/// script's final value: 0 when it ended by `drop`/`break`/`exit`.
pub fn run_top(list: &[Action], ctx: &mut MsgCtx<'_>) -> i32 {
    match run_list(list, ctx) {
        Flow::Next(r) | Flow::Return(r) => r,
        Flow::Break | Flow::Exit => 0,
    }
}
