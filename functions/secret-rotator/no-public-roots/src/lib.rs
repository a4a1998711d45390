//! The `webpki-roots` API with no certificate in it. mysql_async adds these roots unless told not
//! to; secret-rotator also tells it not to, and this makes sure there are none to add.
#![no_std]

use pki_types::TrustAnchor;

/// Empty: no public root is trusted for database connections.
pub const TLS_SERVER_ROOTS: &[TrustAnchor<'static>] = &[];
