//! The one TLS crypto provider of every function: rustls with ring.
//!
//! Every TLS user in a binary (the AWS SDK's HTTPS client, the webhook client, the database
//! drivers) runs on rustls with ring, and nothing compiles a second crypto library in. Clients that
//! take the process default (reqwest) need it installed before they are built: [`install`] does
//! that, and the code that builds such a client calls it first, so no order of calls in `main` or a
//! test can build one without it.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Where the system's CA bundle usually is: Debian and Ubuntu, then Amazon Linux and RHEL (Lambda's
/// `provided.al2023`), then Alpine.
const CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The system's root certificates as one PEM bundle, read once per process, for the webhook
/// client: `SSL_CERT_FILE` when it is set, else the first bundle of
/// [`CA_BUNDLES`] that exists (a set `SSL_CERT_FILE` that cannot be read gives `None`, not another
/// bundle: the operator named that one).
///
/// Why not reqwest's own loading: it reads the bundle and then every file of the system's
/// certificate folder (the same certificates again, about 150 files on Debian), a few ms of CPU.
/// `None` (no bundle, or only `SSL_CERT_DIR` set, which asks for a folder) leaves the client to
/// its own loading.
pub fn system_ca_bundle() -> Option<&'static [u8]> {
    static BUNDLE: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BUNDLE
        .get_or_init(|| {
            let configured = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            if configured.is_none() && std::env::var_os("SSL_CERT_DIR").is_some() {
                return None;
            }
            let candidates = match configured {
                Some(file) => vec![file],
                None => CA_BUNDLES.iter().map(PathBuf::from).collect(),
            };
            candidates
                .into_iter()
                .find_map(|path| std::fs::read(path).ok())
                .filter(|pem| !pem.is_empty())
        })
        .as_deref()
}

/// 128 bits from the system's secure random generator (ring's, linked in for TLS anyway), in hex:
/// a token no other process or sandbox draws.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .is_err()
    {
        // Never seen (getrandom failing); time and process keep tokens apart well enough here.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Installs ring as the process-wide rustls provider. Idempotent: a second call (or a provider
/// already installed) changes nothing.
pub fn install() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one between the check and here: that one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn install_is_idempotent_and_leaves_ring() {
        super::install();
        super::install();
        let provider = rustls::crypto::CryptoProvider::get_default().expect("installed");
        assert!(!provider.cipher_suites.is_empty());
    }

    #[test]
    fn the_system_bundle_holds_certificates() {
        // Every machine the tests run on has a CA bundle (the AWS SDK needs one too).
        let pem = super::system_ca_bundle().expect("a CA bundle");
        assert!(String::from_utf8_lossy(pem).contains("BEGIN CERTIFICATE"));
    }
}
