//! SER modules built into the binary. `loadmodule ".../name.so"` selects
//! one by its base name; anything else is refused with this list.

use crate::route::export::Module;

pub mod ctl_mods;
pub mod maxfwd;
pub mod sl;
pub mod textops;
pub mod usrloc;

/// Module names a config may load.
pub const SUPPORTED: &[&str] = &[
    "sl", "tm", "maxfwd", "textops", "fifo", "unixsock", "usrloc",
];

pub fn create(name: &str) -> Option<Box<dyn Module>> {
    match name {
        "sl" => Some(Box::new(sl::Sl)),
        "tm" => Some(Box::new(crate::tm::funcs::Tm::default())),
        "maxfwd" => Some(Box::new(maxfwd::MaxFwd::default())),
        "textops" => Some(Box::new(textops::TextOps)),
        "fifo" => Some(Box::new(ctl_mods::Fifo::default())),
        "unixsock" => Some(Box::new(ctl_mods::UnixSock::default())),
        "usrloc" => Some(Box::new(usrloc::Usrloc::default())),
        _ => None,
    }
}

/// Refuse any parameter: for modules that have none.
pub fn no_params(module: &'static str, param: &str) -> crate::route::export::ParamError {
    crate::route::export::ParamError::Unknown {
        module,
        param: param.to_string(),
    }
}
