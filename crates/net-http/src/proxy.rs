//! Proxies as curl and httpie use them: NO_PROXY read for every proxy, and a plain `http://`
//! URL sent to an HTTP proxy as `GET http://host/path` (RFC 9112's absolute form), not through
//! a CONNECT tunnel. ureq 3 tunnels every request; proxies commonly allow CONNECT only to port
//! 443 (squid's and tinyproxy's default), so they refuse the tunnel to port 80.

use crate::Error;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, TcpConnector, Transport,
};

/// The proxies a client sends through, one per scheme, and the hosts that bypass them.
#[derive(Clone, Debug)]
pub(crate) struct Proxies {
    http: Result<Option<ureq::Proxy>, BadProxy>,
    https: Result<Option<ureq::Proxy>, BadProxy>,
    /// `NO_PROXY`'s entries.
    bypass: Vec<String>,
}

/// A proxy URL from the environment that does not parse: an error for the requests it would
/// carry, and only those (curl reads only the variable of the URL's scheme).
#[derive(Clone, Debug)]
struct BadProxy {
    url: String,
    reason: String,
}

impl From<BadProxy> for Error {
    fn from(bad: BadProxy) -> Error {
        Error::BadUrl {
            url: crate::error::redacted(&bad.url),
            reason: bad.reason,
        }
    }
}

impl Proxies {
    /// `explicit` for both schemes, else the environment's as curl and requests read it:
    /// `http_proxy` for http:// URLs, `https_proxy` for https://, `all_proxy` for either
    /// when its own is unset (each also in capitals, but `HTTP_PROXY` when run as CGI, as
    /// requests reads them). `NO_PROXY` applies either way. An empty variable is unset: an
    /// env file's `no_proxy=` sent the hosts of `NO_PROXY` to the proxy.
    ///
    /// # Errors
    /// [`Error::BadUrl`] for an explicit proxy URL that does not parse (one from the
    /// environment fails the requests it would carry: see [`Proxies::check`]).
    pub(crate) fn new(explicit: Option<&str>) -> Result<Proxies, Error> {
        let parse = |url: &str, from: &str| {
            let bad = |e: &dyn std::fmt::Display| BadProxy {
                url: url.to_owned(),
                reason: format!("{from}: not a proxy URL: {e}"),
            };
            // ureq takes a port it cannot read for none (80); the URL parser refuses it.
            let full = if url.contains("://") {
                url.to_owned()
            } else {
                format!("http://{url}")
            };
            url::Url::parse(&full).map_err(|e| bad(&e))?;
            ureq::Proxy::new(&full).map(Some).map_err(|e| bad(&e))
        };
        // Under CGI a request's `Proxy:` header arrives as `HTTP_PROXY`: a visitor chose the
        // proxy for our requests, credentials and all ("httpoxy"). Python and Go ignore it
        // there; curl never reads it in capitals.
        let cgi = std::env::var_os("REQUEST_METHOD").is_some();
        let from_env = |names: [&str; 2]| {
            let set = names
                .into_iter()
                .filter(|name| !(cgi && *name == "HTTP_PROXY"))
                .chain(["all_proxy", "ALL_PROXY"])
                .find_map(|name| {
                    Some(name).zip(std::env::var(name).ok().filter(|v| !v.is_empty()))
                });
            match set {
                Some((name, url)) => parse(&url, name),
                None => Ok(None),
            }
        };
        let (http, https) = match explicit {
            Some(url) => {
                let proxy = parse(url, "the proxy")?;
                (Ok(proxy.clone()), Ok(proxy))
            }
            None => (
                from_env(["http_proxy", "HTTP_PROXY"]),
                from_env(["https_proxy", "HTTPS_PROXY"]),
            ),
        };
        let bypass = ["no_proxy", "NO_PROXY"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Proxies {
            http,
            https,
            bypass,
        })
    }

    /// The proxy for `url`: its scheme's, unless `NO_PROXY` lets its host go direct.
    pub(crate) fn for_url(&self, url: &url::Url) -> Option<&ureq::Proxy> {
        self.slot(url).ok().flatten()
    }

    /// Whether a request for `url` can go: not when the variable naming its proxy does not
    /// parse (traffic must not go around a proxy the user set because of a typo).
    ///
    /// # Errors
    /// [`Error::BadUrl`] naming the variable.
    pub(crate) fn check(&self, url: &url::Url) -> Result<(), Error> {
        self.slot(url).map(|_| ()).map_err(|bad| bad.clone().into())
    }

    fn slot(&self, url: &url::Url) -> Result<Option<&ureq::Proxy>, &BadProxy> {
        let Some(host) = url.host() else {
            return Ok(None);
        };
        let port = url.port_or_known_default();
        if self.bypass.iter().any(|entry| bypasses(entry, &host, port)) {
            return Ok(None);
        }
        let slot = match url.scheme() {
            "http" => &self.http,
            _ => &self.https,
        };
        slot.as_ref().map(Option::as_ref)
    }
}

/// Whether the `NO_PROXY` entry (lower case) lets `host` at `port` go direct, as curl and
/// requests read it: `*` is every host; a name matches itself and its subdomains, with or
/// without a leading `.` or `*.`; an address matches itself, a CIDR block (`10.0.0.0/8`)
/// every address in it; `name:port` (`[::1]:port`) that name on that port only.
fn bypasses(entry: &str, host: &url::Host<&str>, port: Option<u16>) -> bool {
    use std::net::IpAddr;
    if entry == "*" {
        return true;
    }
    let ip = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
        url::Host::Domain(_) => None,
    };
    if let Some((net, bits)) = entry.split_once('/') {
        let net = net.trim_start_matches('[').trim_end_matches(']');
        return match (ip, net.parse::<IpAddr>(), bits.parse::<u32>()) {
            (Some(IpAddr::V4(ip)), Ok(IpAddr::V4(net)), Ok(bits)) if bits <= 32 => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(ip) & mask == u32::from(net) & mask
            }
            (Some(IpAddr::V6(ip)), Ok(IpAddr::V6(net)), Ok(bits)) if bits <= 128 => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(ip) & mask == u128::from(net) & mask
            }
            _ => false,
        };
    }
    let bare = entry.trim_start_matches('[').trim_end_matches(']');
    if let Ok(listed) = bare.parse::<IpAddr>() {
        return ip == Some(listed);
    }
    let (name, only_port) = match entry.rsplit_once(':') {
        // `[::1]:8080`: an IPv6 address on that port only.
        Some((name, p)) if name.starts_with('[') && name.ends_with(']') => {
            let listed = name[1..name.len() - 1].parse::<IpAddr>();
            return listed.is_ok_and(|listed| ip == Some(listed))
                && p.parse::<u16>().is_ok_and(|p| Some(p) == port);
        }
        Some((name, p)) if !name.contains(':') => match p.parse::<u16>() {
            Ok(p) => (name, Some(p)),
            Err(_) => return false,
        },
        _ => (entry, None),
    };
    if only_port.is_some_and(|p| Some(p) != port) {
        return false;
    }
    // `intranet.example.` is the same name (curl goes direct either way round).
    let name = name
        .trim_start_matches('*')
        .trim_start_matches('.')
        .trim_end_matches('.');
    let host = match host {
        url::Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(_) => return false,
    };
    host == name || host.ends_with(&format!(".{name}"))
}

/// Connects a plain `http://` request to its HTTP proxy itself, in ureq's chain before its
/// CONNECT connector (which then passes the connection on). Other requests and proxies pass.
#[derive(Debug)]
pub(crate) struct ForwardProxy;

impl<In: Transport> Connector<In> for ForwardProxy {
    type Out = Either<In, AbsoluteForm>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if chained.is_some() {
            return Ok(chained.map(Either::A));
        }
        let Some(proxy) = details.config.proxy() else {
            return Ok(None);
        };
        // Through an HTTPS proxy the request would need TLS to the proxy: ureq's tunnel does
        // that, so it keeps those.
        if proxy.protocol() != ureq::ProxyProtocol::Http || details.uri.scheme_str() != Some("http")
        {
            return Ok(None);
        }
        let Some(authority) = details.uri.authority() else {
            return Ok(None);
        };
        // The URL's credentials were taken out before (Authorization); none reach the proxy.
        let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
        let prefix = format!("http://{host_port}");
        let addrs = details
            .resolver
            .resolve(proxy.uri(), details.config, details.timeout)?;
        let to_proxy = ConnectionDetails {
            uri: proxy.uri(),
            addrs,
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        let Some(tcp) = TcpConnector::default().connect(&to_proxy, None::<Box<dyn Transport>>)?
        else {
            return Ok(None);
        };
        let basic = (proxy.username().is_some() || proxy.password().is_some()).then(|| {
            crate::client::Auth::Basic {
                user: proxy.username().unwrap_or_default().to_owned(),
                password: proxy.password().unwrap_or_default().to_owned(),
            }
        });
        let credentials = basic
            .and_then(|auth| auth.header_value())
            .map(|value| format!("Proxy-Authorization: {value}\r\n"));
        Ok(Some(Either::B(AbsoluteForm {
            inner: tcp.boxed(),
            prefix,
            credentials,
            head_next: true,
            body_after_continue: false,
        })))
    }
}

/// A connection to an HTTP proxy that rewrites each request's first line to name the whole
/// URL (`GET http://host:port/path HTTP/1.1`) and adds the proxy's credentials below it.
#[derive(Debug)]
pub(crate) struct AbsoluteForm {
    inner: Box<dyn Transport>,
    /// `http://host:port`, put before the path.
    prefix: String,
    /// The `Proxy-Authorization` line, with its CRLF.
    credentials: Option<String>,
    /// The next bytes sent start a request: the first, and the first after reading an answer.
    head_next: bool,
    /// The last head asked for `100 Continue`: the next bytes sent, after that interim
    /// answer, are its body.
    body_after_continue: bool,
}

impl Transport for AbsoluteForm {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let head_next = std::mem::take(&mut self.head_next);
        // What follows a head that expects `100 Continue` is its body, whatever it reads like.
        let body_next = std::mem::take(&mut self.body_after_continue);
        let output = &self.inner.buffers().output()[..amount];
        // ureq writes a request's head in its first write, and the next after an answer.
        let rewritten = (head_next && !body_next)
            .then(|| absolute_form(output, &self.prefix, self.credentials.as_deref()))
            .flatten();
        let Some(rewritten) = rewritten else {
            return self.inner.transmit_output(amount, timeout);
        };
        self.body_after_continue = expects_continue(output);
        for piece in rewritten.chunks(self.inner.buffers().output().len().max(1)) {
            self.inner.buffers().output()[..piece.len()].copy_from_slice(piece);
            self.inner.transmit_output(piece.len(), timeout)?;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.head_next = !self.body_after_continue;
        self.inner.await_input(timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.head_next = !self.body_after_continue;
        self.inner.maybe_await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        false
    }
}

/// Whether a request head asks for `100 Continue` before its body.
fn expects_continue(head: &[u8]) -> bool {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    head[..end].split(|&b| b == b'\n').any(|line| {
        let line = line.trim_ascii();
        line.len() >= 7
            && line[..7].eq_ignore_ascii_case(b"expect:")
            && line[7..].trim_ascii().eq_ignore_ascii_case(b"100-continue")
    })
}

/// `head` with `prefix` (the URL's scheme and authority) before its origin-form target and
/// `credentials` (a header line) after its first line; `None` if `head` does not start a
/// request.
fn absolute_form(head: &[u8], prefix: &str, credentials: Option<&str>) -> Option<Vec<u8>> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = &head[..line_end];
    let space = line.iter().position(|&b| b == b' ')?;
    let is_method = space > 0 && line[..space].iter().all(u8::is_ascii_alphabetic);
    if !is_method
        || line.get(space + 1) != Some(&b'/')
        || !line.ends_with(b" HTTP/1.1") && !line.ends_with(b" HTTP/1.0")
    {
        return None;
    }
    let credentials = credentials.unwrap_or_default();
    let mut out = Vec::with_capacity(head.len() + prefix.len() + credentials.len());
    out.extend_from_slice(&head[..=space]);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(&head[space + 1..line_end + 2]);
    out.extend_from_slice(credentials.as_bytes());
    out.extend_from_slice(&head[line_end + 2..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_names_the_whole_url_and_a_body_is_left_alone() {
        let head = b"GET /a?b=1 HTTP/1.1\r\nHost: example.org:8080\r\n\r\n";
        let auth = "Proxy-Authorization: Basic dTpw\r\n";
        assert_eq!(
            absolute_form(head, "http://example.org:8080", Some(auth)).unwrap(),
            b"GET http://example.org:8080/a?b=1 HTTP/1.1\r\n\
              Proxy-Authorization: Basic dTpw\r\nHost: example.org:8080\r\n\r\n"
        );
        for body in [
            &b"{\"a\": 1}\r\n"[..],
            b"GET /a HTTP/1.1",
            b"GET * HTTP/1.1\r\n",
            b" /a HTTP/1.1\r\n",
            b"GET /a HTTP/2\r\n",
        ] {
            assert_eq!(absolute_form(body, "http://h", None), None);
        }
        assert!(expects_continue(
            b"PUT /a HTTP/1.1\r\nHost: h\r\nexpect:  100-Continue\r\n\r\n"
        ));
        assert!(!expects_continue(
            b"PUT /a HTTP/1.1\r\nHost: h\r\n\r\nExpect: 100-continue\r\n"
        ));
    }

    #[test]
    fn no_proxy_entries_match_as_curl_and_requests_read_them() {
        let list = [
            "example.org",
            ".internal",
            "*.corp",
            "10.1.2.3",
            "::1",
            "192.168.0.0/16",
            "fd00::/8",
            "local.test:8080",
            "[fe80::1]:8080",
        ];
        let bypassed = |url: &str| {
            let url = url::Url::parse(url).unwrap();
            let host = url.host().unwrap();
            list.iter()
                .any(|e| bypasses(e, &host, url.port_or_known_default()))
        };
        for url in [
            "http://example.org/",
            "http://www.example.org/",
            "http://internal/",
            "http://a.b.internal/",
            "http://corp/",
            "http://x.corp:8080/",
            "http://10.1.2.3/",
            "http://[::1]:80/",
            "http://192.168.4.5/",
            "http://[fd12::1]/",
            "http://local.test:8080/",
            "http://[fe80::1]:8080/",
            "http://example.org./",
        ] {
            assert!(bypassed(url), "{url}");
        }
        for url in [
            "http://example.com/",
            "http://notexample.org/",
            "http://10.1.2.30/",
            "http://127.0.0.1/",
            "http://192.169.0.1/",
            "http://local.test/",
            "http://[fe80::1]:8081/",
            "http://[fe80::2]:8080/",
        ] {
            assert!(!bypassed(url), "{url}");
        }
        let all = url::Url::parse("https://anything.example/").unwrap();
        assert!(bypasses("*", &all.host().unwrap(), None));
        let plain = url::Url::parse("http://intranet.example/").unwrap();
        assert!(bypasses("intranet.example.", &plain.host().unwrap(), None));
    }
}
