//! Per-tenant secrets: one verifier per tenant, on one route.

use std::fmt;
use std::marker::PhantomData;

use http::request::Parts;

use super::KeyedVerifier;
use crate::verify::{SignatureVerifier, VerifiedWebhook, VerifyError};

/// A [`KeyedVerifier`] for multi-tenant services: the key is a whole verifier
/// (a [`Stripe`](crate::providers::Stripe) with that customer's secret, say),
/// one per tenant, and the tenant is found by `locate` (a path segment, a
/// header). Pair it with a [`CachedKeys`](super::CachedKeys) over your
/// [`KeySource`](super::KeySource) of per-tenant verifiers.
///
/// Tenant A's secret verifies only tenant A's requests: a request is checked
/// with the verifier of the tenant it names, and nothing else. Each tenant's
/// events are admitted under their own namespace (`<route namespace>.<tenant>`),
/// so one tenant can never pre-empt another's event ids; a tenant id must
/// therefore be ASCII letters, digits, `-`, `_` or `.` (anything else is
/// refused with 400).
pub struct Tenants<V, F> {
    provider: &'static str,
    locate: F,
    _verifier: PhantomData<fn() -> V>,
}

impl<V, F> Tenants<V, F>
where
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    /// Tenants of `provider`, each found by `locate` (`None`: the request
    /// names no tenant, refused with 400).
    pub fn new(provider: &'static str, locate: F) -> Self {
        Self {
            provider,
            locate,
            _verifier: PhantomData,
        }
    }
}

impl<V, F> fmt::Debug for Tenants<V, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenants")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl<V, F> KeyedVerifier for Tenants<V, F>
where
    V: SignatureVerifier,
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    type Locator = String;
    type Key = V;

    fn provider(&self) -> &'static str {
        self.provider
    }

    fn locate(&self, parts: &Parts, _body: &[u8]) -> Result<String, VerifyError> {
        let tenant = (self.locate)(parts).ok_or(VerifyError::BadRequest(
            "the request names no tenant".into(),
        ))?;
        let valid = !tenant.is_empty()
            && tenant.len() <= 48
            && tenant
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
        if !valid {
            return Err(VerifyError::BadRequest(
                "the tenant id is not 1 to 48 ASCII letters, digits, '-', '_' or '.'".into(),
            ));
        }
        Ok(tenant)
    }

    fn verify(
        &self,
        parts: &Parts,
        body: &[u8],
        tenant: &String,
        verifier: &V,
    ) -> Result<VerifiedWebhook, VerifyError> {
        let mut verified = verifier.verify(parts, body)?;
        verified.set_tenant(tenant.clone());
        Ok(verified)
    }
}
