//! The management target: the same bytes as a FIFO stream (through the
//! FIFO server's own request loop) and as one unix socket datagram,
//! served by a registry of commands that only read their parameters and
//! answer: the core commands that touch no process or shared memory, and
//! tm's UAC and reply commands (without tm set up they parse everything
//! and then refuse, which is the part under test).

use std::time::Instant;

use crate::ctl::fifo::{serve_input, FifoInput};
use crate::ctl::unixsock::answer;
use crate::ctl::{CtlCmd, Dialect, Registry};

/// Core commands kept: those that neither signal nor read shared state.
const CORE: &[&str] = &["print", "version", "pwd", "arg", "which", "uptime"];
/// tm commands kept: those that read parameters (t_stats and t_hash
/// read only counters).
const TM: &[&str] = &["t_uac_from", "t_uac_dlg", "t_uac_cancel", "t_reply"];

fn registry() -> Registry {
    let pick = |cmds: &[CtlCmd], names: &[&str]| -> Vec<CtlCmd> {
        cmds.iter()
            .filter(|c| names.contains(&c.name))
            .copied()
            .collect()
    };
    let mut r = Registry::default();
    r.add(&pick(crate::ctl::core_cmds::COMMANDS, CORE));
    r.add(&pick(crate::tm::ctl_cmds::COMMANDS, TM));
    r
}

/// The input cut into writes at each 0xff byte, as a writer that pauses
/// between them (a pause inside a request lets the next request's head
/// interrupt it).
struct Writes<'a> {
    chunks: std::slice::Split<'a, u8, fn(&u8) -> bool>,
    done: bool,
}

impl FifoInput for Writes<'_> {
    fn fill(&mut self, buf: &mut Vec<u8>, _deadline: Option<Instant>) -> bool {
        match self.chunks.next() {
            Some(c) => {
                buf.extend_from_slice(c);
                true
            }
            None => {
                self.done = true;
                false
            }
        }
    }

    fn ended(&self) -> bool {
        self.done
    }
}

/// Fuzz target body. Every request gets a well-formed reply.
pub fn commands(data: &[u8]) {
    let reg = registry();
    let split: fn(&u8) -> bool = |b| *b == 0xff;
    let mut input = Writes {
        chunks: data.split(split),
        done: false,
    };
    serve_input(&mut input, &reg, |_, reply| {
        check(&reply.render(Dialect::Fifo));
    });
    if let Some(bytes) = answer(&reg, data, None) {
        check(&bytes);
    }
}

/// A rendered reply starts with a three-digit code and a space.
fn check(bytes: &[u8]) {
    assert!(
        bytes.len() >= 4 && bytes[..3].iter().all(u8::is_ascii_digit) && bytes[3] == b' ',
        "malformed reply {:?}",
        String::from_utf8_lossy(bytes)
    );
}
