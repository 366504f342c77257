//! Proxies as curl and httpie use them: NO_PROXY read for every proxy, and a plain `http://`
//! URL sent to an HTTP proxy as `GET http://host/path` (RFC 9112's absolute form), not through
//! a CONNECT tunnel. ureq 3 tunnels every request; proxies commonly allow CONNECT only to port
//! 443 (squid's and tinyproxy's default), so they refuse the tunnel to port 80.

use base64::Engine as _;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, TcpConnector, Transport,
};

/// `proxy`, bypassed for the hosts in `NO_PROXY` (or `no_proxy`), as curl reads it. ureq reads
/// the variable only for a proxy from the environment.
pub(crate) fn with_no_proxy(proxy: ureq::Proxy) -> ureq::Proxy {
    match ["NO_PROXY", "no_proxy"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
    {
        Some(list) => bypassing(proxy, &list),
        None => proxy,
    }
}

/// `proxy`, bypassed for the hosts in `list` (comma-separated) as curl matches them: `*` is
/// every host, and a name matches itself and its subdomains, with or without a leading dot
/// (ureq alone would match an entry without a dot as that host only).
fn bypassing(proxy: ureq::Proxy, list: &str) -> ureq::Proxy {
    let mut builder = ureq::Proxy::builder(proxy.protocol())
        .host(proxy.host())
        .port(proxy.port())
        .resolve_target(proxy.resolve_target());
    if let Some(user) = proxy.username() {
        builder = builder.username(user);
    }
    if let Some(password) = proxy.password() {
        builder = builder.password(password);
    }
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry == "*" {
            builder = builder.no_proxy("*");
            continue;
        }
        let name = entry.trim_start_matches('*').trim_start_matches('.');
        // A target's IPv6 host comes bracketed, as in its URL.
        if name.parse::<std::net::Ipv6Addr>().is_ok() {
            builder = builder.no_proxy(&format!("[{name}]"));
        } else {
            builder = builder.no_proxy(name).no_proxy(&format!(".{name}"));
        }
    }
    // The parts came from a proxy that was built, so they build again.
    builder.build().unwrap_or(proxy)
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
        if proxy.protocol() != ureq::ProxyProtocol::Http
            || details.uri.scheme_str() != Some("http")
            || proxy.is_no_proxy(details.uri)
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
        let credentials = (proxy.username().is_some() || proxy.password().is_some()).then(|| {
            let pair = format!(
                "{}:{}",
                proxy.username().unwrap_or_default(),
                proxy.password().unwrap_or_default()
            );
            format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        Ok(Some(Either::B(AbsoluteForm {
            inner: tcp.boxed(),
            prefix,
            credentials,
            head_next: true,
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
}

impl Transport for AbsoluteForm {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let head_next = std::mem::take(&mut self.head_next);
        let output = &self.inner.buffers().output()[..amount];
        // ureq writes a request's head in its first write; what comes after reading an
        // answer is a body only after a `100 Continue`, which does not start like a head.
        let rewritten = head_next
            .then(|| absolute_form(output, &self.prefix, self.credentials.as_deref()))
            .flatten();
        let Some(rewritten) = rewritten else {
            return self.inner.transmit_output(amount, timeout);
        };
        for piece in rewritten.chunks(self.inner.buffers().output().len().max(1)) {
            self.inner.buffers().output()[..piece.len()].copy_from_slice(piece);
            self.inner.transmit_output(piece.len(), timeout)?;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.head_next = true;
        self.inner.await_input(timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.head_next = true;
        self.inner.maybe_await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        false
    }
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
    }

    #[test]
    fn no_proxy_entries_match_as_curl_reads_them() {
        let proxy = ureq::Proxy::new("http://user:pw@127.0.0.1:3128").unwrap();
        let proxy = bypassing(proxy, " example.org, .internal,*.corp, 10.1.2.3,::1,");
        let bypassed = |url: &str| proxy.is_no_proxy(&url.parse::<ureq::http::Uri>().unwrap());
        for url in [
            "http://example.org/",
            "http://www.example.org/",
            "http://internal/",
            "http://a.b.internal/",
            "http://corp/",
            "http://x.corp:8080/",
            "http://10.1.2.3/",
            "http://[::1]:80/",
        ] {
            assert!(bypassed(url), "{url}");
        }
        for url in [
            "http://example.com/",
            "http://notexample.org/",
            "http://10.1.2.30/",
            "http://127.0.0.1/",
        ] {
            assert!(!bypassed(url), "{url}");
        }
        assert_eq!(
            (
                proxy.host(),
                proxy.port(),
                proxy.username(),
                proxy.password()
            ),
            ("127.0.0.1", 3128, Some("user"), Some("pw"))
        );
        let all = bypassing(ureq::Proxy::new("socks5://127.0.0.1:1080").unwrap(), "*");
        assert!(
            all.is_no_proxy(
                &"https://anything.example/"
                    .parse::<ureq::http::Uri>()
                    .unwrap()
            )
        );
        assert_eq!(all.protocol(), ureq::ProxyProtocol::Socks5);
    }
}
