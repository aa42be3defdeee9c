//! JSON-RPC 2.0 management (`jsonrpc_socket=`, `jsonrpc_listen=`): the
//! FIFO's command table under a second framing. [`codec`] reads requests
//! and writes responses, [`names`] maps 2.x RPC names to FIFO commands
//! and shapes results, [`dispatch`] runs a request, [`server`] is the
//! process serving the sockets.

pub mod codec;
pub mod dispatch;
pub mod names;
pub mod server;
