//! usrloc: the location database — contacts registered per
//! address-of-record, kept in shared memory so every worker sees every
//! registration (SER's db_mode 0: memory only).

pub mod binding;

pub use binding::{Binding, PERMANENT, Q_UNSPECIFIED};
