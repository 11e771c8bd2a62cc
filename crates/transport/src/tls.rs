//! TLS configuration: TLS 1.2 minimum, server certificates from PEM files, outbound
//! connections verified against the system roots plus an optional CA file.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

/// A TLS setup problem, with the file it concerns.
#[derive(Debug)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
static TLS12_UP: [&SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

/// TLS 1.2 and 1.3, or 1.3 alone: nothing older is even compiled in.
fn versions(tls13_only: bool) -> &'static [&'static SupportedProtocolVersion] {
    if tls13_only { &TLS13_ONLY } else { &TLS12_UP }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut data.as_slice()).collect();
    let certs = certs.map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?
        .ok_or_else(|| TlsError(format!("{}: no private key found", path.display())))
}

/// A server configuration from a PEM certificate chain and key.
pub fn server_config(
    cert: &Path,
    key: &Path,
    tls13_only: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(cert)?;
    let key = read_key(key)?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(tls13_only))
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    Ok(Arc::new(cfg))
}

/// A client configuration trusting the system roots and, if given, the CAs in `ca_file`.
/// Peer names are always checked.
pub fn client_config(
    ca_file: Option<&Path>,
    tls13_only: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(path) = ca_file {
        for c in read_certs(path)? {
            roots
                .add(c)
                .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
        }
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(tls13_only))
        .map_err(|e| TlsError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Writes a self-signed certificate and key for `names` (DNS names or IP addresses) to
/// `cert` and `key`, unless both exist. The key file is created readable by its owner only.
/// Returns whether files were written.
pub fn ensure_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<bool, TlsError> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    let err = |e: rcgen::Error| TlsError(e.to_string());
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(err)?;
    // The subject names the first host name (`sipwarden.lab` in the lab), as clients that
    // show or check the common name expect, instead of rcgen's placeholder.
    if let Some(cn) = names
        .iter()
        .find(|n| n.parse::<std::net::IpAddr>().is_err())
    {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn.as_str());
    }
    let signing_key = rcgen::KeyPair::generate().map_err(err)?;
    let ck = rcgen::CertifiedKey {
        cert: params.self_signed(&signing_key).map_err(err)?,
        signing_key,
    };
    for p in [cert, key] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| TlsError(format!("{}: {e}", dir.display())))?;
        }
    }
    std::fs::write(cert, ck.cert.pem())
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    write_private(key, ck.signing_key.serialize_pem().as_bytes())
        .map_err(|e| TlsError(format!("{}: {e}", key.display())))?;
    Ok(true)
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_then_server_config() {
        let dir = std::env::temp_dir().join(format!("sipwarden-tls-{}", std::process::id()));
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        assert!(
            ensure_self_signed(&cert, &key, &["sipwarden.lab".into(), "127.0.0.1".into()]).unwrap()
        );
        assert!(
            !ensure_self_signed(&cert, &key, &["x".into()]).unwrap(),
            "existing files are kept"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(server_config(&cert, &key, false).is_ok());
        assert!(client_config(Some(&cert), false).is_ok());
        // Subject and issuer (self-signed) name the host, besides the alternative name.
        let der = read_certs(&cert).unwrap().remove(0);
        let name = b"sipwarden.lab";
        let seen = der.windows(name.len()).filter(|w| w == name).count();
        assert_eq!(
            seen, 3,
            "common name of subject and issuer, and the DNS name"
        );
        assert!(
            server_config(&key, &key, false).is_err(),
            "a key is not a certificate"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
