//! net-http: a blocking HTTP client on ureq, with sessions, retries and downloads.
//!
//! ```
//! use net_http::{Client, ClientConfig};
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let base = format!("http://{}", listener.local_addr()?);
//! # // A server for the example: two answers on one keep-alive connection.
//! # std::thread::spawn(move || -> std::io::Result<()> {
//! #     use std::io::{BufRead as _, Read as _, Write as _};
//! #     let (mut stream, _) = listener.accept()?;
//! #     let mut reader = std::io::BufReader::new(stream.try_clone()?);
//! #     for answer in [
//! #         "200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n[{\"id\": 1}]",
//! #         "201 Created\r\nContent-Length: 0\r\n\r\n",
//! #     ] {
//! #         let (mut line, mut length) = (String::new(), 0);
//! #         while reader.read_line(&mut line)? > 2 {
//! #             let lower = line.to_ascii_lowercase();
//! #             if let Some(value) = lower.strip_prefix("content-length:") {
//! #                 length = value.trim().parse().unwrap_or(0);
//! #             }
//! #             line.clear();
//! #         }
//! #         reader.by_ref().take(length).read_to_end(&mut Vec::new())?;
//! #         write!(stream, "HTTP/1.1 {answer}")?;
//! #     }
//! #     Ok(())
//! # });
//!
//! let client = Client::new(ClientConfig::default())?;
//! // `base` is a server's address, such as http://127.0.0.1:8000.
//! let response = client
//!     .get(&format!("{base}/api/items"))?
//!     .query("page", "2")
//!     .bearer("s3cret")
//!     .send()?
//!     .error_for_status()?;
//! let items: serde_json::Value = response.json()?;
//! assert_eq!(items[0]["id"], 1);
//!
//! let created = client
//!     .post(&format!("{base}/api/items"))?
//!     .json(&serde_json::json!({ "name": "widget" }))?
//!     .send()?;
//! assert_eq!(created.status(), 201);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod config;
mod cookie_date;
mod decode;
mod digest;
mod download;
mod error;
pub mod files;
mod items;
mod netrc;
mod proxy;
mod response;
mod session;
mod tls;

pub use client::{Auth, Client, Part, Preview, Request, url_credentials, url_shorthand};
pub use config::{ClientConfig, Retry};
pub use download::{
    DownloadEvent, DownloadOptions, Downloaded, Progress, disposition_name, download_name,
    kept_part, part_path,
};
pub use error::{Error, PROXY_WANTS_CREDENTIALS, TimeoutKind};
pub use items::{BodyKind, Item};
pub use netrc::{Login, Netrc};
pub use response::{Head, Response};
pub use session::Session;
