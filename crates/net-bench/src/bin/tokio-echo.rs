//! The anchor: a tokio multi-thread echo server, as a tokio user would write it.
//! `tokio-echo --bind ADDR --threads N`; prints `listening on ADDR`.
#![allow(clippy::print_stderr, reason = "reports its address like netkit serve")]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() -> std::io::Result<()> {
    let bind: String = net_bench::arg("--bind", "127.0.0.1:0".to_owned());
    let threads: usize = net_bench::arg("--threads", 2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        eprintln!("listening on {}", listener.local_addr()?);
        loop {
            let (mut socket, _) = listener.accept().await?;
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}
