//! What a worker process does with each datagram, and the process plan
//! the supervisor carries out.

pub mod overload;
pub mod receive;
pub mod start;
