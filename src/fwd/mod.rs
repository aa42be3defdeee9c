//! Forwarding: what both stateless forwarding (route) and transactions
//! (tm) do to a message on its way through — Via edits, where a message
//! goes (and which socket it leaves from), the replies built here — so
//! neither reaches into the other for it. Below route and tm, above net.
//!
//! A destination names its transport (`(SocketAddr, Proto)`); sending
//! refuses a transport that is not served yet with a typed error, which is
//! where TCP and TLS connections will slot in.

mod dest;
mod reply;
mod send;
mod via;

pub use dest::{
    answer_destination, destination_of, destinations_of, next_hops, numeric, reply_destination,
    reply_transport, resolve, resolve_bounded, DestError, Hops, ReplyRouteError,
};
pub use reply::{build_local_reply, Built, ReplySpec};
pub use send::{pick_socket, send_to, SendError};
pub use via::{edit_via1, via1_received_params, via1_replaced_spans, without_top_via};
