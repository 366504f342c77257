//! A real nginx for the HTTP client tests, configured and started by xtask.
//!
//! Sets `NETKIT_TEST_NGINX_URL` (`http://127.0.0.1:PORT`) and `NETKIT_TEST_NGINX_ROOT` (a
//! directory the tests write files into). Locations:
//! - `/`: static files from the root (gzip on for text, Range and If-Modified-Since as usual);
//! - `/slow/NAME`: the file NAME at 4 MiB/s, to interrupt downloads midway;
//! - `/no-etag/NAME`: the file NAME without an `ETag` (`Last-Modified` its only validator);
//! - `/status/CODE`: an empty response with that status (200, 201, 204, 301, 302, 400, 401,
//!   403, 404, 418, 429, 500, 502, 503);
//! - `/redirect/N`: a 302 chain to `/redirect/N-1`, ending at `/hello.txt`.
//!
//! The same root is served over TLS at `NETKIT_TEST_NGINX_TLS_URL` with a certificate for
//! 127.0.0.1 signed by a throwaway CA, `NETKIT_TEST_NGINX_CA` (a PEM file), and at
//! `NETKIT_TEST_NGINX_MTLS_URL` only to clients with a certificate of that CA: `client.pem`,
//! `client.key` and both in `client-with-key.pem` in `NETKIT_TEST_NGINX_CLIENT_DIR`.

use std::path::Path;
use std::process::Command;

use crate::provision::Need;
use crate::service::{self, Service, Started};
use crate::test::path_str;

/// What nginx (and its test certificates) need installed.
pub const NEEDS: &[Need] = &[
    Need {
        probe: "nginx",
        package: "nginx-light",
    },
    Need {
        probe: "openssl",
        package: "openssl",
    },
];

/// The nginx of a test run.
pub struct Nginx {
    pub started: Started,
    /// The port of `NETKIT_TEST_NGINX_TLS_URL`.
    pub tls_port: u16,
}

/// Starts nginx on a free 127.0.0.1 port; sets `NETKIT_TEST_NGINX_URL` and `NETKIT_TEST_NGINX_ROOT`.
pub fn start(work: &Path) -> anyhow::Result<Nginx> {
    let dir = work.join("nginx");
    let root = dir.join("root");
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("hello.txt"), "hello from nginx\n")?;
    let port = service::free_port()?;
    let tls_port = service::free_port()?;
    let mtls_port = service::free_port()?;
    make_certificates(&dir)?;
    let statuses: String = [
        200, 201, 204, 301, 302, 400, 401, 403, 404, 418, 429, 500, 502, 503,
    ]
    .iter()
    .map(|code| format!("        location = /status/{code} {{ return {code}; }}\n"))
    .collect();
    let redirects: String = (1..=10)
        .map(|n| {
            let next = if n == 1 {
                "/hello.txt".to_owned()
            } else {
                format!("/redirect/{}", n - 1)
            };
            format!("        location = /redirect/{n} {{ return 302 {next}; }}\n")
        })
        .collect();
    let d = path_str(&dir);
    let r = path_str(&root);
    let http = format!(
        "    access_log {d}/access.log;
    gzip on;
    gzip_min_length 1;
    gzip_types text/plain application/json;
    server {{
        listen 127.0.0.1:{port};
        root {r};
        location /slow/ {{ alias {r}/; limit_rate 4m; }}
        location /no-etag/ {{ alias {r}/; etag off; }}
        location /named/ {{
            alias {r}/;
            add_header Content-Disposition 'attachment; filename=\"../../evil name.txt\"';
        }}
        location /named-utf8/ {{
            alias {r}/;
            add_header Content-Disposition \"attachment; filename=fallback.txt; filename*=UTF-8''na%C3%AFve%20report.txt\";
        }}
{statuses}{redirects}    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        root {r};
    }}
    server {{
        listen 127.0.0.1:{mtls_port} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        ssl_client_certificate {d}/ca.pem;
        ssl_verify_client on;
        root {r};
    }}
"
    );
    let nginx = run(&dir, 1, &http, port)?;
    let started = Started {
        services: vec![nginx],
        env: vec![
            (
                "NETKIT_TEST_NGINX_URL".into(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("NETKIT_TEST_NGINX_ROOT".into(), r),
            (
                "NETKIT_TEST_NGINX_TLS_URL".into(),
                format!("https://127.0.0.1:{tls_port}"),
            ),
            ("NETKIT_TEST_NGINX_CA".into(), format!("{d}/ca.pem")),
            (
                "NETKIT_TEST_NGINX_MTLS_URL".into(),
                format!("https://127.0.0.1:{mtls_port}"),
            ),
            ("NETKIT_TEST_NGINX_CLIENT_DIR".into(), d.clone()),
        ],
    };
    Ok(Nginx { started, tls_port })
}

/// Runs nginx in the foreground from `dir` (pid, logs and temp files inside it) with
/// `workers` worker processes and `http` inside the `http {}` block; waits for `port`.
pub fn run(dir: &Path, workers: usize, http: &str, port: u16) -> anyhow::Result<Service> {
    std::fs::create_dir_all(dir.join("tmp"))?;
    let d = path_str(dir);
    // As root, workers would drop to `nobody`, who may not read a checkout under /root.
    let user = if crate::provision::is_root() {
        "user root;\n"
    } else {
        ""
    };
    let config = format!(
        "daemon off;
{user}worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
{http}}}
"
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config)?;
    let nginx_at = || {
        let mut cmd = Command::new(crate::provision::program("nginx"));
        cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
        cmd
    };
    service::run_ok(nginx_at().args(["-t", "-q"]))?;
    let log = dir.join("stderr.log");
    let mut nginx = Service::spawn("nginx", &mut nginx_at(), &log)?;
    nginx.wait_for_port(format!("127.0.0.1:{port}").parse()?, &log)?;
    Ok(nginx)
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate signed by it (rustls
/// refuses a self-signed leaf as its own trust anchor).
fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    let openssl =
        |args: &[&str]| service::run_ok(Command::new("openssl").args(args).current_dir(dir));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=netkit test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ][..],
            &ec,
        ]
        .concat(),
    )?;
    // A leaf signed by the CA: `name`.key, `name`.pem.
    let signed = |name: &str, subject: &str, ext: &str| -> anyhow::Result<()> {
        let (key, csr, pem, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(
            &[
                &["req", "-subj", subject, "-keyout", &key, "-out", &csr][..],
                &ec,
            ]
            .concat(),
        )?;
        std::fs::write(dir.join(&extfile), ext)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &extfile,
        ])
    };
    signed(
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    signed(
        "client",
        "/CN=netkit test client",
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )?;
    // The certificate and its key in one file, as curl's --cert and httpie's --cert take it.
    let bundle = [
        std::fs::read(dir.join("client.pem"))?,
        std::fs::read(dir.join("client.key"))?,
    ]
    .concat();
    std::fs::write(dir.join("client-with-key.pem"), bundle)?;
    Ok(())
}
