//! The `echo` service: every byte back, unchanged.

use crate::handler::{ConnInfo, Context, Handler};

/// Sends every byte back unchanged; back-pressure keeps a client that does not read from
/// growing the server's memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Echo {
    /// The service, for [`ServerBuilder::build`](crate::ServerBuilder::build).
    #[must_use]
    pub fn service() -> impl crate::Service {
        |_: &ConnInfo| Echo
    }
}

impl Handler for Echo {
    fn on_data(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }
}
