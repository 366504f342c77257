//! net-socket: TCP servers on the mio event loop, one loop per core.
//!
//! A [`Server`] accepts connections on every thread through its own `SO_REUSEPORT` listener
//! and drives one [`Handler`] per connection. Built-in services: [`Echo`], [`Chat`] and
//! [`HttpFiles`], the static file server behind `netkit serve`.
//!
//! ```
//! use std::io::{Read, Write};
//! use net_socket::{Context, Handler, ServerBuilder};
//!
//! /// Answers every chunk in upper case.
//! struct Shout;
//!
//! impl Handler for Shout {
//!     fn on_data(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
//!         ctx.write(&data.to_ascii_uppercase());
//!     }
//! }
//!
//! let server = ServerBuilder::new()
//!     .bind("127.0.0.1:0".parse()?)
//!     .threads(2)
//!     .build(|_: &net_socket::ConnInfo| Shout)?;
//! let addr = server.local_addrs()[0];
//! let stop = server.shutdown_handle();
//! let running = std::thread::spawn(move || server.run());
//!
//! let mut client = std::net::TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut reply = [0; 5];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"HELLO");
//!
//! drop(client);
//! stop.shutdown();
//! running.join().map_err(|_| "the server thread panicked")??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chat;
mod echo;
mod error;
mod handler;
mod http;
mod output;
mod server;
mod worker;

pub use chat::{Chat, MAX_LINE, Member};
pub use echo::Echo;
pub use error::Error;
pub use handler::{CloseReason, ConnId, ConnInfo, Context, Handler, Service};
pub use http::{HttpConn, HttpFiles};
pub use server::{Server, ServerBuilder, ShutdownHandle, Stats, StatsSnapshot};
