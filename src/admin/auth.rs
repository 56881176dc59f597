//! Who may use the admin service: the [`Authorize`] hook, the crate's
//! [`BearerToken`], browser sessions and the cross-site check.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hmac::{Hmac, Mac};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Shared;
use crate::secret::Secret;

/// The cookie that carries a dashboard session.
pub const SESSION_COOKIE: &str = "tower_webhooks_admin";

/// Decides who may use the admin service. Every route but the login form
/// asks it first.
///
/// Implemented by [`BearerToken`], by [`AllowAll`] (loopback development
/// only), and by any `Fn(&http::request::Parts) -> bool`, so an application
/// can reuse its own authentication:
///
/// ```
/// use tower_webhooks::admin::Admin;
/// use tower_webhooks::inbox::{Inbox, MemoryInbox};
///
/// let inbox = Inbox::new(MemoryInbox::new());
/// // Whatever the application trusts: here, a header its proxy sets.
/// let admin = Admin::new(inbox, |request: &http::request::Parts| {
///     request.headers.get("x-authenticated-role").is_some_and(|role| role == "ops")
/// });
/// let _router: axum::Router = admin.router();
/// ```
///
/// The admin service refuses state-changing requests that a browser sent
/// from another site, whatever the hook (see [`Admin`](super::Admin)).
pub trait Authorize: Send + Sync + 'static {
    /// Whether `request` may proceed.
    fn authorize(&self, request: &Parts) -> bool;

    /// The dashboard's login form: the [`SESSION_COOKIE`] value that the
    /// `credential` typed in earns, or `None` to refuse it. The default
    /// refuses every login: browsers then authenticate however the
    /// application does, and [`authorize`](Self::authorize) sees it.
    fn login(&self, credential: &str) -> Option<String> {
        let _ = credential;
        None
    }
}

impl<F> Authorize for F
where
    F: Fn(&Parts) -> bool + Send + Sync + 'static,
{
    fn authorize(&self, request: &Parts) -> bool {
        self(request)
    }
}

/// Lets every request in: for a development listener on a loopback address,
/// never for one others can reach.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Authorize for AllowAll {
    fn authorize(&self, _: &Parts) -> bool {
        true
    }
}

/// The token is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the admin token is empty")]
pub struct EmptyToken;

/// A shared bearer token: requests carry `Authorization: Bearer <token>`,
/// browsers log in once with it on the dashboard's form and then carry a
/// session cookie.
///
/// Tokens are compared in constant time. The session cookie holds an expiry
/// and an HMAC-SHA256 of it keyed by the token, never the token itself; it
/// is `HttpOnly` and `SameSite=Strict` (and `Secure` when the login came
/// over HTTPS), and it stops working when the token changes. The token never
/// appears in `Debug` output.
#[derive(Clone)]
pub struct BearerToken {
    token: Arc<Secret>,
    session: Duration,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("token", &"[redacted]")
            .field("session", &self.session)
            .finish()
    }
}

impl BearerToken {
    /// Requests need `token`. Dashboard sessions last 12 hours.
    ///
    /// # Errors
    ///
    /// [`EmptyToken`] if `token` is empty: it would let anyone in.
    pub fn new(token: impl Into<Secret>) -> Result<Self, EmptyToken> {
        let token = token.into();
        if token.is_empty() {
            return Err(EmptyToken);
        }
        Ok(Self {
            token: Arc::new(token),
            session: Duration::from_secs(12 * 3600),
        })
    }

    /// How long a dashboard login lasts. Default 12 hours.
    #[must_use]
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session = lifetime;
        self
    }

    fn matches(&self, given: &[u8]) -> bool {
        bool::from(given.ct_eq(self.token.expose()))
    }

    fn session_mac(&self, expires: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.token.expose())
            .expect("HMAC takes a key of any length");
        mac.update(b"tower-webhooks admin session ");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// Whether `value` is a session this token issued that has not expired.
    fn valid_session(&self, value: &str) -> bool {
        let Some((expires, tag)) = value.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (expires.parse::<u64>(), hex::decode(tag)) else {
            return false;
        };
        expires > unix_now() && self.session_mac(expires).verify_slice(&tag).is_ok()
    }
}

impl Authorize for BearerToken {
    fn authorize(&self, request: &Parts) -> bool {
        if let Some(given) = bearer(&request.headers) {
            return self.matches(given.as_bytes());
        }
        cookie(&request.headers, SESSION_COOKIE).is_some_and(|value| self.valid_session(value))
    }

    fn login(&self, credential: &str) -> Option<String> {
        if !self.matches(credential.as_bytes()) {
            return None;
        }
        let expires = unix_now().saturating_add(self.session.as_secs());
        let tag = self.session_mac(expires).finalize().into_bytes();
        Some(format!("{expires}.{}", hex::encode(tag)))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The credential of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given.trim())
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether a browser sent this request from another site: its `Origin` (or
/// else its `Referer`) names another host than the request's own, or its
/// `Sec-Fetch-Site` says `cross-site`/`same-site`. `None` when the request
/// carries none of them (not a browser's).
pub(crate) fn cross_site(parts: &Parts) -> Option<bool> {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| parts.uri.authority().map(|authority| authority.as_str()));
    let same_host = |url: &HeaderValue| {
        let authority = url
            .to_str()
            .ok()
            .and_then(|url| url.parse::<http::Uri>().ok())
            .and_then(|uri| uri.authority().cloned());
        match (authority, host) {
            (Some(authority), Some(host)) => authority.as_str().eq_ignore_ascii_case(host),
            _ => false,
        }
    };
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        return Some(!same_host(origin));
    }
    if let Some(referer) = parts.headers.get(header::REFERER) {
        return Some(!same_host(referer));
    }
    parts
        .headers
        .get("sec-fetch-site")
        .map(|site| !(site == "same-origin" || site == "none"))
}

/// Whether a state-changing request must be refused as a possible cross-site
/// request forgery: a browser says it came from another site, or it carries
/// cookies (which a browser attaches by itself) and no sign of where it came
/// from.
pub(crate) fn forged(parts: &Parts) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    match cross_site(parts) {
        Some(cross) => cross,
        None => parts.headers.contains_key(header::COOKIE),
    }
}

/// The middleware in front of every protected route.
pub(crate) async fn guard(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if !shared.auth.authorize(&parts) {
        return if wants_html(&parts.headers) {
            super::dashboard::login_page(&shared, StatusCode::UNAUTHORIZED, None)
        } else {
            let mut response =
                super::api::error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        };
    }
    if forged(&parts) {
        return super::api::error(
            StatusCode::FORBIDDEN,
            "cross-site request refused: send it from the dashboard's own origin",
        );
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Whether the client is a browser navigating (it accepts HTML).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::post("/events/requeue");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_and_session() {
        let token = BearerToken::new("s3cret").unwrap();
        assert!(token.authorize(&parts(&[("authorization", "Bearer s3cret")])));
        assert!(!token.authorize(&parts(&[("authorization", "Bearer s3cre")])));
        assert!(!token.authorize(&parts(&[("authorization", "s3cret")])));
        assert!(!token.authorize(&parts(&[])));
        assert!(token.login("wrong").is_none());
        let session = token.login("s3cret").unwrap();
        assert!(!session.contains("s3cret"));
        let cookie = format!("a=b; {SESSION_COOKIE}={session}");
        assert!(token.authorize(&parts(&[("cookie", &cookie)])));
        // Another token's session, a tampered one, an expired one.
        let other = BearerToken::new("other").unwrap();
        assert!(!other.authorize(&parts(&[("cookie", &cookie)])));
        let tampered = cookie.replace(".", "9.");
        assert!(!token.authorize(&parts(&[("cookie", &tampered)])));
        let expired = BearerToken::new("s3cret")
            .unwrap()
            .session_lifetime(Duration::ZERO)
            .login("s3cret")
            .unwrap();
        let cookie = format!("{SESSION_COOKIE}={expired}");
        assert!(!token.authorize(&parts(&[("cookie", &cookie)])));
        assert!(!format!("{token:?}").contains("s3cret"));
        assert_eq!(BearerToken::new("").unwrap_err(), EmptyToken);
    }

    #[test]
    fn cross_site_requests_with_cookies_are_refused() {
        let host = ("host", "admin.example:8001");
        assert!(!forged(&parts(&[
            host,
            ("origin", "http://admin.example:8001")
        ])));
        assert!(forged(&parts(&[host, ("origin", "http://evil.example")])));
        assert!(forged(&parts(&[host, ("origin", "null")])));
        assert!(!forged(&parts(&[
            host,
            ("referer", "http://admin.example:8001/x")
        ])));
        assert!(forged(&parts(&[
            host,
            ("referer", "http://evil.example/x")
        ])));
        assert!(forged(&parts(&[host, ("sec-fetch-site", "cross-site")])));
        assert!(forged(&parts(&[host, ("cookie", "a=b")])));
        assert!(!forged(&parts(&[host, ("authorization", "Bearer t")])));
    }
}
