//! TLS for the PostgreSQL backends (feature `postgres-tls`): rustls with the
//! `ring` provider, through `tokio-postgres-rustls`.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::backend::StoreError;

/// How the PostgreSQL backends encrypt their connections: set with
/// `tls` on [`PostgresStoreBuilder`](crate::idempotency::PostgresStoreBuilder)
/// or [`PostgresInboxBuilder`](crate::inbox::PostgresInboxBuilder).
///
/// A store given a `PgTls` never falls back to plaintext: its connections
/// require TLS whatever the connection string's `sslmode` says, and the
/// server's certificate is checked against the roots chosen here, for the
/// host the connection string names.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_webhooks::backend::StoreError> {
/// use tower_webhooks::backend::PgTls;
/// use tower_webhooks::idempotency::PostgresStore;
///
/// let store = PostgresStore::builder()
///     .tls(PgTls::webpki_roots())
///     .connect("postgres://app@db.internal:5432/app")?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgTls {
    config: Arc<ClientConfig>,
}

impl PgTls {
    /// Trusts the Mozilla root certificates (the `webpki-roots` crate): for
    /// managed databases whose certificate a public authority issued.
    #[must_use]
    pub fn webpki_roots() -> Self {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::with_roots(roots)
    }

    /// Trusts only the certificates in `pem` (one or more `CERTIFICATE`
    /// blocks): a private authority, or a managed database's own CA bundle
    /// (Amazon RDS, Cloud SQL, Azure publish theirs).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] when `pem` holds no certificate, or one that
    /// cannot be used as a root.
    pub fn with_root_certificates(pem: &[u8]) -> Result<Self, StoreError> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|error| {
                StoreError::backend(format!("invalid PEM root certificate: {error}"))
            })?;
            roots.add(certificate).map_err(|error| {
                StoreError::backend(format!("unusable root certificate: {error}"))
            })?;
        }
        if roots.is_empty() {
            return Err(StoreError::backend(
                "no CERTIFICATE block in the root certificates given",
            ));
        }
        Ok(Self::with_roots(roots))
    }

    /// Uses a rustls client configuration you built (client certificates,
    /// other roots). [`rustls`](crate::backend::rustls) is re-exported so the
    /// versions match.
    #[must_use]
    pub fn from_rustls(config: Arc<ClientConfig>) -> Self {
        Self { config }
    }

    fn with_roots(roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            config: Arc::new(config),
        }
    }

    pub(crate) fn connector(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        tokio_postgres_rustls::MakeRustlsConnect::new((*self.config).clone())
    }
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls")
            .field("alpn", &self.config.alpn_protocols.len())
            .finish_non_exhaustive()
    }
}
