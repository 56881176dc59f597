//! Secrets that never print, and sets of them for rotation.
//!
//! A [`Secret`] holds key material as bytes. Its `Debug` and `Display` output is
//! `[redacted]`, so a secret that ends up in a log line, a panic message or an
//! error by accident reveals nothing.
//!
//! A [`SecretSet`] holds every secret a verifier accepts at once. Rotating a
//! secret is then a two-step deployment: add the new secret next to the old one,
//! switch the sender over, remove the old one. No delivery fails in between.
//!
//! ```
//! use tower_webhooks::{Secret, SecretSet};
//!
//! let old = Secret::from("whsec_old");
//! assert_eq!(format!("{old:?}"), "Secret([redacted])");
//!
//! let set = SecretSet::from(["whsec_new", "whsec_old"]);
//! assert_eq!(set.len(), 2);
//! ```

use std::fmt;

/// Key material that is redacted in `Debug` and `Display`.
///
/// The bytes are only reachable through [`Secret::expose`], which makes every
/// place that touches them easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Creates a secret from raw key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into().into_boxed_slice())
    }

    /// Returns the key bytes.
    ///
    /// Call this only where the key is fed to a MAC or a key parser.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Returns `true` if the secret holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value.as_bytes())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value.into_bytes())
    }
}

impl From<&[u8]> for Secret {
    fn from(value: &[u8]) -> Self {
        Self::new(value)
    }
}

impl From<Vec<u8>> for Secret {
    fn from(value: Vec<u8>) -> Self {
        Self::new(value)
    }
}

/// Every secret a verifier accepts, in order.
///
/// The index of a secret in the set is what [`VerifiedWebhook::secret_index`]
/// reports, so a deployment can see when the old secret stops being used.
///
/// [`VerifiedWebhook::secret_index`]: crate::VerifiedWebhook::secret_index
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretSet(Vec<Secret>);

impl SecretSet {
    /// Creates a set from any number of secrets.
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Secret>,
    {
        Self(secrets.into_iter().map(Into::into).collect())
    }

    /// Adds a secret at the end of the set.
    #[must_use]
    pub fn with(mut self, secret: impl Into<Secret>) -> Self {
        self.0.push(secret.into());
        self
    }

    /// Returns the number of secrets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns `true` if the set holds no secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the secrets in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Secret> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a SecretSet {
    type Item = &'a Secret;
    type IntoIter = std::slice::Iter<'a, Secret>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Secret> for SecretSet {
    fn from(value: Secret) -> Self {
        Self(vec![value])
    }
}

impl From<&str> for SecretSet {
    fn from(value: &str) -> Self {
        Self(vec![value.into()])
    }
}

impl From<String> for SecretSet {
    fn from(value: String) -> Self {
        Self(vec![value.into()])
    }
}

impl<S: Into<Secret>> From<Vec<S>> for SecretSet {
    fn from(value: Vec<S>) -> Self {
        Self::new(value)
    }
}

impl<S: Into<Secret>, const N: usize> From<[S; N]> for SecretSet {
    fn from(value: [S; N]) -> Self {
        Self::new(value)
    }
}

impl<S: Into<Secret>> FromIterator<S> for SecretSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::new(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let secret = Secret::from("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
        let set = SecretSet::from(["hunter2", "swordfish"]);
        let debug = format!("{set:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("swordfish"));
        assert_eq!(set.iter().nth(1).unwrap().expose(), b"swordfish");
    }
}
