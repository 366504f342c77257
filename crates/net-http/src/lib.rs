//! net-http: a blocking HTTP client on ureq, with sessions, retries and downloads.
//!
//! ```no_run
//! use net_http::{Client, ClientConfig};
//!
//! let client = Client::new(ClientConfig::default())?;
//! let response = client
//!     .get("http://127.0.0.1:8000/api/items")?
//!     .query("page", "2")
//!     .bearer("s3cret")
//!     .send()?
//!     .error_for_status()?;
//! let items: serde_json::Value = response.json()?;
//!
//! let created = client
//!     .post("http://127.0.0.1:8000/api/items")?
//!     .json(&serde_json::json!({ "name": "widget" }))?
//!     .send()?;
//! assert_eq!(created.status(), 201);
//! # let _ = items;
//! # Ok::<(), net_http::Error>(())
//! ```

mod client;
mod config;
mod digest;
mod download;
mod error;
mod items;
mod response;
mod session;

pub use client::{Auth, Client, Part, Preview, Request, url_credentials};
pub use config::{ClientConfig, Retry};
pub use download::{
    DownloadOptions, Downloaded, Progress, disposition_name, download_name, part_path,
};
pub use error::Error;
pub use items::{BodyKind, Item};
pub use response::Response;
pub use session::Session;
