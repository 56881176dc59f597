//! Fetching keys over HTTPS without choosing an HTTP client: the [`Fetcher`]
//! trait, and the URL checks that run before anything is fetched.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::KeyError;

/// Fetches a document (a certificate, a JWK set) by URL with the
/// application's HTTP client, or with the crate's
/// [`HttpsFetcher`](super::HttpsFetcher) (feature `https-fetcher`).
///
/// The crate never fetches on its own: presets that need a key from the
/// network (AWS SNS's certificates) take a `Fetcher`, and only call it with
/// a URL that passed a [`UrlPin`] first.
///
/// An implementation must:
///
/// - **not follow redirects** (a redirect to another host would undo the
///   pinning; treat a 3xx as an error),
/// - verify TLS certificates against the system's (or a configured) roots,
/// - bound the response size (key documents are a few KiB) and the time
///   taken (the [`CachedKeys`](super::CachedKeys) timeout bounds the wait,
///   not the connection),
/// - answer an error for any status but 200.
///
/// ```
/// use bytes::Bytes;
/// use tower_webhooks::keys::{Fetcher, KeyError};
///
/// /// Serves one fixed document, for tests.
/// #[derive(Debug)]
/// struct Fixed(Bytes);
///
/// #[async_trait::async_trait]
/// impl Fetcher for Fixed {
///     async fn get(&self, _url: &str) -> Result<Bytes, KeyError> {
///         Ok(self.0.clone())
///     }
/// }
/// # let _ = Fixed(Bytes::new());
/// ```
#[async_trait]
pub trait Fetcher: fmt::Debug + Send + Sync + 'static {
    /// The body of a `GET` of `url` (answered 200).
    ///
    /// # Errors
    ///
    /// [`KeyError`] for anything else: a network failure, a status other
    /// than 200, a redirect, a body too large. The request waiting for the
    /// key is answered 503 and the sender retries.
    async fn get(&self, url: &str) -> Result<Bytes, KeyError>;
}

#[async_trait]
impl<F: Fetcher + ?Sized> Fetcher for Arc<F> {
    async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
        (**self).get(url).await
    }
}

#[async_trait]
impl<F: Fetcher + ?Sized> Fetcher for Box<F> {
    async fn get(&self, url: &str) -> Result<Bytes, KeyError> {
        (**self).get(url).await
    }
}

/// Why a URL was refused before any fetch. Holds only a static reason (the
/// URL came from the request: it is not echoed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key URL refused: {0}")]
pub struct UrlRefused(pub &'static str);

/// The longest key URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// An `https` URL that passed the checks of [`HttpsUrl::parse`]: no user
/// information, no port but 443, a plain DNS host name, no query or
/// fragment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpsUrl {
    url: Box<str>,
    host: Box<str>,
    path: Box<str>,
    query: Option<Box<str>>,
}

impl HttpsUrl {
    /// Parses and checks `url`:
    ///
    /// - the scheme is `https` (lowercase, as senders write it),
    /// - no user information (`https://user@host/…` is refused, not
    ///   stripped),
    /// - no port, or port 443,
    /// - the host is a DNS name of lowercase ASCII letters, digits, `-` and
    ///   `.`, with no empty label and no trailing dot (so no IP literal and
    ///   no percent-encoding),
    /// - the path starts with `/`, and there is no query and no fragment,
    /// - at most [`MAX_URL_LEN`] bytes.
    ///
    /// # Errors
    ///
    /// [`UrlRefused`] naming the first check that failed.
    pub fn parse(url: &str) -> Result<Self, UrlRefused> {
        Self::parse_inner(url, false)
    }

    /// [`parse`](Self::parse), but allowing a query (`?…`, printable ASCII
    /// without `#` or a backslash): for URLs that carry their parameters, such as
    /// an SNS `SubscribeURL`.
    ///
    /// # Errors
    ///
    /// [`UrlRefused`] naming the first check that failed.
    pub fn parse_with_query(url: &str) -> Result<Self, UrlRefused> {
        Self::parse_inner(url, true)
    }

    fn parse_inner(url: &str, allow_query: bool) -> Result<Self, UrlRefused> {
        if url.len() > MAX_URL_LEN {
            return Err(UrlRefused("the URL is too long"));
        }
        let rest = url
            .strip_prefix("https://")
            .ok_or(UrlRefused("the URL is not https"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => return Err(UrlRefused("the URL has no path")),
        };
        if authority.contains('@') {
            return Err(UrlRefused("the URL carries user information"));
        }
        let host = match authority.rsplit_once(':') {
            Some((host, "443")) => host,
            Some(_) => return Err(UrlRefused("the URL names a port other than 443")),
            None => authority,
        };
        let labels_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !labels_ok {
            return Err(UrlRefused("the URL's host is not a lowercase DNS name"));
        }
        let (path, query) = match path.split_once('?') {
            Some((path, query)) if allow_query => (path, Some(query)),
            Some(_) => return Err(UrlRefused("the URL has a query or a fragment")),
            None => (path, None),
        };
        if path.contains('#') || query.is_some_and(|query| query.contains(['?', '#'])) {
            return Err(UrlRefused("the URL has a query or a fragment"));
        }
        let printable =
            |text: &str| text.bytes().all(|b| b.is_ascii_graphic()) && !text.contains('\\');
        if !printable(path) {
            return Err(UrlRefused(
                "the URL's path has characters outside printable ASCII",
            ));
        }
        if !query.is_none_or(printable) {
            return Err(UrlRefused(
                "the URL's query has characters outside printable ASCII",
            ));
        }
        Ok(Self {
            url: url.into(),
            host: host.into(),
            path: path.into(),
            query: query.map(Into::into),
        })
    }

    /// The whole URL, as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query, without its `?` (only from
    /// [`parse_with_query`](Self::parse_with_query)).
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
}

impl fmt::Display for HttpsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// A host name pattern: DNS labels, where a label `*` matches exactly one
/// label of `[a-z0-9-]` (at least `min_wildcard_len` long), and every other
/// label matches only itself. `sns.*.amazonaws.com` matches
/// `sns.us-east-1.amazonaws.com`, and not `sns.amazonaws.com`,
/// `sns.a.b.amazonaws.com` or `sns.us-east-1.amazonaws.com.evil.com`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    labels: Vec<Box<str>>,
    min_wildcard_len: usize,
}

impl HostPattern {
    /// A pattern of dot-separated labels; `*` is a one-label wildcard.
    pub fn new(pattern: &str) -> Self {
        Self {
            labels: pattern
                .to_ascii_lowercase()
                .split('.')
                .map(Into::into)
                .collect(),
            min_wildcard_len: 1,
        }
    }

    /// Requires at least `len` characters of a label matched by `*`.
    #[must_use]
    pub fn min_wildcard_len(mut self, len: usize) -> Self {
        self.min_wildcard_len = len.max(1);
        self
    }

    /// Whether `host` (lowercase, as [`HttpsUrl::host`]) matches.
    pub fn matches(&self, host: &str) -> bool {
        let mut labels = host.split('.');
        for pattern in &self.labels {
            let Some(label) = labels.next() else {
                return false;
            };
            let ok = if &**pattern == "*" {
                label.len() >= self.min_wildcard_len
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            } else {
                label == &**pattern
            };
            if !ok {
                return false;
            }
        }
        labels.next().is_none()
    }
}

/// The URLs a preset may fetch keys from: [`HttpsUrl::parse`]'s checks, a
/// host matching one of the [`HostPattern`]s, and optionally a path suffix.
/// Checked in [`locate`](super::KeyedVerifier::locate), before any fetch.
///
/// ```
/// use tower_webhooks::keys::{HostPattern, UrlPin};
///
/// let pin = UrlPin::new([HostPattern::new("sns.*.amazonaws.com")]).path_suffix(".pem");
/// assert!(pin.check("https://sns.us-east-1.amazonaws.com/cert.pem").is_ok());
/// assert!(pin.check("https://sns.us-east-1.amazonaws.com.evil.com/cert.pem").is_err());
/// assert!(pin.check("http://sns.us-east-1.amazonaws.com/cert.pem").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlPin {
    hosts: Vec<HostPattern>,
    path_suffix: Option<Box<str>>,
    query: bool,
}

impl UrlPin {
    /// Allows hosts matching any of `hosts`.
    pub fn new(hosts: impl IntoIterator<Item = HostPattern>) -> Self {
        Self {
            hosts: hosts.into_iter().collect(),
            path_suffix: None,
            query: false,
        }
    }

    /// Also requires the path to end with `suffix` (such as `.pem`).
    #[must_use]
    pub fn path_suffix(mut self, suffix: &str) -> Self {
        self.path_suffix = Some(suffix.into());
        self
    }

    /// Also accepts URLs with a query ([`HttpsUrl::parse_with_query`]).
    #[must_use]
    pub fn allow_query(mut self) -> Self {
        self.query = true;
        self
    }

    /// Checks `url`.
    ///
    /// # Errors
    ///
    /// [`UrlRefused`] if it fails [`HttpsUrl::parse`] (or, with
    /// [`allow_query`](Self::allow_query), [`HttpsUrl::parse_with_query`]),
    /// its host matches no pattern, or its path lacks the suffix.
    pub fn check(&self, url: &str) -> Result<HttpsUrl, UrlRefused> {
        let url = HttpsUrl::parse_inner(url, self.query)?;
        if !self.hosts.iter().any(|pattern| pattern.matches(url.host())) {
            return Err(UrlRefused("the URL's host is not one the sender uses"));
        }
        if let Some(suffix) = &self.path_suffix
            && !url.path().ends_with(&**suffix)
        {
            return Err(UrlRefused(
                "the URL's path does not have the expected suffix",
            ));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_url_checks() {
        let ok = HttpsUrl::parse("https://sns.us-east-1.amazonaws.com:443/a/b.pem").unwrap();
        assert_eq!(ok.host(), "sns.us-east-1.amazonaws.com");
        assert_eq!(ok.path(), "/a/b.pem");
        for bad in [
            "http://example.com/x",
            "HTTPS://example.com/x",
            "https://example.com",
            "https://user@example.com/x",
            "https://user:pw@example.com/x",
            "https://example.com:8443/x",
            "https://example.com:/x",
            "https://Example.com/x",
            "https://example.com./x",
            "https://[::1]/x",
            "https://exa_mple.com/x",
            "https://example.com/x?y=1",
            "https://example.com/x#y",
            "https://example.com/x y",
            "https://-a.com/x",
            "https://a..com/x",
        ] {
            assert!(HttpsUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(HttpsUrl::parse(&format!("https://a.com/{}", "x".repeat(3000))).is_err());
    }

    #[test]
    fn queries_only_where_allowed() {
        let url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc";
        assert!(HttpsUrl::parse(url).is_err());
        let parsed = HttpsUrl::parse_with_query(url).unwrap();
        assert_eq!(parsed.path(), "/");
        assert_eq!(parsed.query(), Some("Action=ConfirmSubscription&Token=abc"));
        assert_eq!(parsed.as_str(), url);
        assert_eq!(
            HttpsUrl::parse_with_query("https://a.com/x")
                .unwrap()
                .query(),
            None
        );
        for bad in [
            "https://a.com/?x=1#y",
            "https://a.com/?x=1?y",
            "https://a.com/?x= 1",
            "https://a.com/?x=\\1",
            "https://a.com/x#y?z",
            "https://user@a.com/?x=1",
            "https://a.com:8443/?x=1",
            "https://a.com?x=1",
        ] {
            assert!(HttpsUrl::parse_with_query(bad).is_err(), "{bad}");
        }
        let pin = UrlPin::new([HostPattern::new("a.com")]);
        assert!(pin.check("https://a.com/?x=1").is_err());
        assert!(
            pin.clone()
                .allow_query()
                .check("https://a.com/?x=1")
                .is_ok()
        );
    }

    #[test]
    fn host_patterns_match_whole_labels() {
        let pattern = HostPattern::new("sns.*.amazonaws.com").min_wildcard_len(3);
        assert!(pattern.matches("sns.us-east-1.amazonaws.com"));
        assert!(!pattern.matches("sns.amazonaws.com"));
        assert!(!pattern.matches("sns.a.b.amazonaws.com"));
        assert!(!pattern.matches("sns.eu.amazonaws.com"));
        assert!(!pattern.matches("sns.us-east-1.amazonaws.com.evil.com"));
        assert!(!pattern.matches("evilsns.us-east-1.amazonaws.com"));
        assert!(!pattern.matches("sns.us-east-1.amazonaws.co"));
    }
}
