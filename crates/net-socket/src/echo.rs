//! The `echo` service: every byte back, unchanged.

use crate::handler::{ConnInfo, Context, Handler, Service};

/// Sends every byte back unchanged; back-pressure keeps a client that does not read from
/// growing the server's memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl Echo {
    /// The service, for [`ServerBuilder::build`](crate::ServerBuilder::build); `Echo` itself
    /// is one too, as [`Chat`](crate::Chat) and [`HttpFiles`](crate::HttpFiles) are.
    #[must_use]
    pub fn service() -> impl crate::Service {
        Echo
    }
}

/// `.build(Echo)` as `.build(Chat::new())`: each connection gets its own (stateless) `Echo`.
impl Service for Echo {
    type Handler = Echo;

    fn connect(&self, _info: &ConnInfo) -> Echo {
        Echo
    }
}

impl Handler for Echo {
    fn on_data(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }
}
