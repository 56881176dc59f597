use std::borrow::Cow;
use std::fmt;

/// The namespace of a route's event ids: 1 to 64 ASCII letters, digits, `-`,
/// `_` and `.` (a `:` would make `namespace:event-id` keys ambiguous).
///
/// Made with [`new`](Self::new) (a `Result`) or
/// [`from_static`](Self::from_static) (checked at compile time in a `const`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(Cow<'static, str>);

/// Why a string is not a [`Namespace`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid namespace {name:?}: {reason}")]
pub struct NamespaceError {
    name: String,
    reason: &'static str,
}

impl Namespace {
    /// The longest namespace, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`NamespaceError`] if `name` is empty, longer than
    /// [`MAX_LEN`](Self::MAX_LEN), or holds anything but ASCII letters,
    /// digits, `-`, `_` and `.`.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Result<Self, NamespaceError> {
        let name = name.into();
        match check(name.as_bytes()) {
            Ok(()) => Ok(Self(name)),
            Err(reason) => Err(NamespaceError {
                name: name.chars().take(80).collect(),
                reason,
            }),
        }
    }

    /// A namespace from a literal.
    ///
    /// # Panics
    ///
    /// If `name` is not valid (see [`new`](Self::new)); in a `const` that is a
    /// compile error.
    pub const fn from_static(name: &'static str) -> Self {
        if check(name.as_bytes()).is_err() {
            panic!("invalid namespace: use 1 to 64 ASCII letters, digits, '-', '_' and '.'");
        }
        Self(Cow::Borrowed(name))
    }

    /// The namespace as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const fn check(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > Namespace::MAX_LEN {
        return Err("it is longer than 64 bytes");
    }
    let mut index = 0;
    while index < name.len() {
        let byte = name[index];
        if !(byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || byte == b'.') {
            return Err("use only ASCII letters, digits, '-', '_' and '.'");
        }
        index += 1;
    }
    Ok(())
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Namespace {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl TryFrom<&'static str> for Namespace {
    type Error = NamespaceError;

    fn try_from(name: &'static str) -> Result<Self, NamespaceError> {
        Self::new(name)
    }
}

impl TryFrom<String> for Namespace {
    type Error = NamespaceError;

    fn try_from(name: String) -> Result<Self, NamespaceError> {
        Self::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        for good in ["generic", "stripe-eu", "a.b_c", &"x".repeat(64)] {
            assert!(Namespace::new(good.to_owned()).is_ok(), "{good}");
        }
        for bad in ["", "a:b", "a b", "é", "a#sig", &"x".repeat(65)] {
            let error = Namespace::new(bad.to_owned()).unwrap_err();
            assert!(error.to_string().contains("invalid namespace"), "{error}");
        }
    }
}
