//! TLS material for the stack's servers and clients: a rustls server configuration (ALPN h2 and
//! http/1.1) from PEM certificate and key files, a client configuration trusting extra PEM roots
//! (with or without the system roots), and self-signed certificates generated with rcgen for
//! local stacks and tests. Every configuration uses the aws-lc-rs provider explicitly.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocols servers offer, most preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The servers' provider: TLS 1.3 suites in the order the servers choose them, AES-128-GCM
/// with SHA-256 first, then ChaCha20-Poly1305, then AES-256-GCM with SHA-384. Browsers with AES
/// hardware ask for AES-128-GCM first anyway; OpenSSL-based clients (curl, ffmpeg, GStreamer)
/// ask for AES-256-GCM-SHA384, whose key schedule (HMAC-SHA-384, without a hardware SHA-512
/// here) was a sixth of a new connection's time and whose 14 AES rounds cost 40% more per byte
/// than 10. Every TLS 1.3 suite is at least 128-bit secure.
fn server_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::CipherSuite as S;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites.sort_by_key(|s| match s.suite() {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS13_CHACHA20_POLY1305_SHA256 => 1,
        S::TLS13_AES_256_GCM_SHA384 => 2,
        _ => 3,
    });
    Arc::new(p)
}

/// Every certificate in a PEM file; an error names the file when it holds none or is unreadable.
pub fn certs_from_pem_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read certificate file {}", path.display()))?;
    certs_from_pem(&bytes).with_context(|| format!("certificate file {}", path.display()))
}

/// Every certificate in PEM text.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        bail!("no CERTIFICATE block found");
    }
    Ok(certs)
}

/// A server configuration from PEM text: the certificate chain (leaf first) and its private key
/// (PKCS#8, PKCS#1 or SEC1), offering h2 and http/1.1 by ALPN.
pub fn server_config_from_pem_bytes(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>> {
    let certs = certs_from_pem(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow!("no usable private key: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(server_provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the private key does not match the certificate or is unsupported")?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// A server configuration from PEM files; errors name the file at fault.
pub fn server_config_from_pem(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>> {
    let cert = std::fs::read(cert_path)
        .with_context(|| format!("cannot read TLS certificate {}", cert_path.display()))?;
    let key = std::fs::read(key_path)
        .with_context(|| format!("cannot read TLS key {}", key_path.display()))?;
    certs_from_pem(&cert).with_context(|| format!("TLS certificate {}", cert_path.display()))?;
    server_config_from_pem_bytes(&cert, &key).with_context(|| {
        format!(
            "TLS certificate {} with key {}",
            cert_path.display(),
            key_path.display()
        )
    })
}

/// Which roots a client trusts.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    /// PEM files whose certificates are trusted.
    pub ca_files: Vec<std::path::PathBuf>,
    /// Also trust the operating system's root store.
    pub system: bool,
}

/// A client configuration verifying servers against `roots`, offering `alpn` (empty: none).
/// Call it only once an `https://` URL is to be used: it loads the system roots when asked, and
/// says (once per process) when no root at all is trusted.
pub fn client_config(roots: &Roots, alpn: &[&[u8]]) -> Result<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    if roots.system {
        let native = rustls_native_certs_load();
        let (added, _ignored) = store.add_parsable_certificates(native);
        tracing::debug!(added, "system root certificates loaded");
    }
    for path in &roots.ca_files {
        for cert in certs_from_pem_file(path)? {
            store
                .add(cert)
                .with_context(|| format!("{}: not a usable root certificate", path.display()))?;
        }
    }
    if store.is_empty() {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!("no trusted root certificates: every https:// server will be refused")
        });
    }
    config_with(store, alpn)
}

/// A client configuration that trusts nothing, for a client that has only `http://` targets
/// but whose connector type also has a TLS side. Loads no roots and says nothing.
pub fn plain_only_client_config() -> Result<rustls::ClientConfig> {
    config_with(rustls::RootCertStore::empty(), &[])
}

fn config_with(store: rustls::RootCertStore, alpn: &[&[u8]]) -> Result<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// An `http://` and `https://` connector for hyper-util's client over `http`, verifying servers
/// with `config` (whose ALPN is replaced by h2 and http/1.1, or http/1.1 only when `h2` is false).
/// When `server_name` is given it is the TLS name checked for every connection, whatever
/// address the URL names (for clients that connect to resolved IPs of one host name).
pub fn https_connector(
    mut http: hyper_util::client::legacy::connect::HttpConnector,
    config: rustls::ClientConfig,
    h2: bool,
    server_name: Option<&str>,
) -> Result<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>> {
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.to_string())
                .with_context(|| format!("`{name}` is not a valid TLS server name"))?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    Ok(if h2 {
        builder.enable_all_versions().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    })
}

fn rustls_native_certs_load() -> Vec<CertificateDer<'static>> {
    let result = rustls_native_certs::load_native_certs();
    for e in &result.errors {
        tracing::warn!(error = %e, "loading system root certificates");
    }
    result.certs
}

/// A self-signed certificate for `names` (DNS names or IP addresses), valid for the names only:
/// returns `(certificate PEM, private key PEM)`. The certificate is its own root, so clients
/// trust it by adding the certificate PEM as a CA.
pub fn self_signed(names: &[String]) -> Result<(String, String)> {
    if names.is_empty() {
        bail!("a self-signed certificate needs at least one name");
    }
    let key = rcgen::KeyPair::generate().context("generating a key pair")?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .with_context(|| format!("invalid certificate names {names:?}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a self-signed certificate for `names` to `dir/cert.pem` and `dir/key.pem` (the key
/// readable by the owner only) and returns both paths.
pub fn write_self_signed(
    dir: &Path,
    names: &[String],
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = self_signed(names)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert)
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    std::fs::write(&key_path, key)
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", key_path.display()))?;
    }
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_loads_as_server_and_client_config() {
        let (cert, key) = self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        let server = server_config_from_pem_bytes(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(
            server.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn mismatched_key_is_an_error() {
        let (cert, _) = self_signed(&["a.test".into()]).unwrap();
        let (_, other_key) = self_signed(&["b.test".into()]).unwrap();
        let err = server_config_from_pem_bytes(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("does not match"), "{err:#}");
    }

    #[test]
    fn files_that_are_not_pem_are_named() {
        let dir = tempfile_dir();
        let bad = dir.join("cert.pem");
        std::fs::write(&bad, "hello").unwrap();
        let err = server_config_from_pem(&bad, &bad).unwrap_err();
        assert!(
            format!("{err:#}").contains(&bad.display().to_string()),
            "{err:#}"
        );
        let missing = dir.join("missing.pem");
        let err = server_config_from_pem(&missing, &bad).unwrap_err();
        assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
        let err = client_config(
            &Roots {
                ca_files: vec![bad.clone()],
                system: false,
            },
            &[],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("no CERTIFICATE"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn servers_choose_aes_128_gcm_whatever_the_client_prefers() {
        let (cert, key) = self_signed(&["a.test".into()]).unwrap();
        let server = server_config_from_pem_bytes(cert.as_bytes(), key.as_bytes()).unwrap();
        // A client listing AES-256-GCM-SHA384 first, as OpenSSL-based clients do.
        let mut p = rustls::crypto::aws_lc_rs::default_provider();
        p.cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(certs_from_pem(cert.as_bytes()).unwrap());
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(p))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
        let mut c = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets().unwrap();
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets().unwrap();
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
        }
        assert!(!c.is_handshaking(), "the handshake did not finish");
        let suite = c.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "common-tls-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
