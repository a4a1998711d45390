//! The one TLS crypto provider of every function: rustls with ring.
//!
//! Every TLS user in a binary (the AWS SDK's HTTPS client, the webhook client, the database
//! drivers) runs on rustls with ring, and nothing compiles a second crypto library in. Clients that
//! take the process default (reqwest) need it installed before they are built: [`install`] does
//! that, and the code that builds such a client calls it first, so no order of calls in `main` or a
//! test can build one without it.

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
}
