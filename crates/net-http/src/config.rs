use std::path::PathBuf;
use std::time::Duration;

/// How a [`Client`](crate::Client) connects, waits, follows and retries.
///
/// Every default is finite: no request can hang forever. Fields are set on the default
/// (a struct literal with `..Default::default()` is refused: the struct may grow):
///
/// ```
/// let mut config = net_http::ClientConfig::default();
/// config.timeout = Some(std::time::Duration::from_secs(10));
/// config.max_redirects = 0;
/// let client = net_http::Client::new(config)?;
/// # Ok::<(), net_http::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Time to open the TCP (and TLS) connection (default 10 s).
    pub connect_timeout: Duration,
    /// Time for a whole request, body, redirects, retries and their waits included, as curl's
    /// `--max-time` (default 5 min); `None` lifts the limit for long downloads, the read
    /// timeout still applies. A retry whose wait would end past it is not made: the request
    /// fails at once with [`Error::Timeout`](crate::Error::Timeout).
    pub timeout: Option<Duration>,
    /// Longest wait for the next bytes from the server, or for the server to take the next
    /// bytes of the request (default 30 s).
    pub read_timeout: Duration,
    /// Redirects followed before [`Error::TooManyRedirects`](crate::Error::TooManyRedirects);
    /// 0 returns the 3xx response itself (default 10).
    pub max_redirects: u32,
    /// The `User-Agent` header (default `netkit/VERSION`).
    pub user_agent: String,
    /// A proxy URL (`http://`, `socks5://`, ...); `None` reads the environment, each name in
    /// lower case first, then in capitals: `http_proxy` for `http://` URLs and `https_proxy`
    /// for `https://` ones, else `all_proxy`. `HTTP_PROXY` is skipped when `REQUEST_METHOD`
    /// is set (under CGI it is a visitor's `Proxy:` header, "httpoxy"). Either way the hosts
    /// in `no_proxy` (or `NO_PROXY`) are reached directly, as with curl.
    pub proxy: Option<String>,
    /// PEM file of the CA certificates to trust instead of the web-PKI roots (curl's --cacert).
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate (and its chain) to present to servers that ask
    /// for one, and its private key unless `client_key` names another file (curl's and
    /// httpie's --cert).
    pub client_cert: Option<PathBuf>,
    /// PEM file with the private key of `client_cert` (httpie's --cert-key, curl's --key).
    pub client_key: Option<PathBuf>,
    /// Accept any TLS certificate. Dangerous: an explicit opt-in only.
    pub insecure: bool,
    /// Retries of idempotent requests (default: none).
    pub retry: Retry,
    /// The largest body [`Response::text`](crate::Response::text),
    /// [`bytes`](crate::Response::bytes) and [`json`](crate::Response::json) read
    /// (default 64 MiB); readers and downloads stream without limit.
    pub body_limit: u64,
    /// Send the path of a URL given to [`Client::request`](crate::Client::request) as
    /// written: `..` and `.` kept and nothing re-encoded, as curl's and httpie's
    /// `--path-as-is` (default false: they are resolved, as browsers and curl do). Redirects
    /// still go where the server says.
    pub path_as_is: bool,
}

/// The proxy's password left out: a `{:?}` of the config may reach a log.
impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_redirects", &self.max_redirects)
            .field("user_agent", &self.user_agent)
            .field("proxy", &self.proxy.as_deref().map(crate::error::redacted))
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("insecure", &self.insecure)
            .field("retry", &self.retry)
            .field("body_limit", &self.body_limit)
            .field("path_as_is", &self.path_as_is)
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            timeout: Some(Duration::from_secs(300)),
            read_timeout: Duration::from_secs(30),
            max_redirects: 10,
            user_agent: concat!("netkit/", env!("CARGO_PKG_VERSION")).to_owned(),
            proxy: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            insecure: false,
            retry: Retry::default(),
            body_limit: 64 << 20,
            path_as_is: false,
        }
    }
}

/// Retry policy for idempotent requests (GET, HEAD, PUT, DELETE, OPTIONS, TRACE).
///
/// A request is retried after a connection error or timeout and after 408, 429, 500, 502,
/// 503 and 504 (curl's `--retry` statuses),
/// waiting `backoff`, then twice as long each time (with jitter), or what `Retry-After` asks,
/// never more than `max_wait`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Retry {
    /// Retries after the first attempt (default 0).
    pub retries: u32,
    /// The first wait (default 500 ms).
    pub backoff: Duration,
    /// The longest single wait (default 30 s).
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            retries: 0,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl Retry {
    /// `retries` retries with the default waits.
    #[must_use]
    pub fn times(retries: u32) -> Self {
        Retry {
            retries,
            ..Retry::default()
        }
    }
}
