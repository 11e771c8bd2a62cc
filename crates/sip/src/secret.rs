//! A value that must never reach a log: passwords, HA1s, tokens, keys.
//!
//! It lives here, at the bottom of the workspace, because the digest math of this crate is
//! what consumes passwords and HA1s, and every crate that holds a secret (the configuration,
//! the call core, the server) already depends on this one.

use core::fmt;

use zeroize::Zeroize;

/// A secret: `Debug` and `Display` print `<redacted>`, equality is constant-time, and the
/// memory is wiped when it is dropped.
///
/// Reading the value takes [`Secret::expose`], so every use is one `grep expose` away.
///
/// ```
/// use sipwarden_sip::Secret;
///
/// let password = Secret::new(String::from("carrier-secret"));
/// assert_eq!(format!("{password:?} {password}"), "<redacted> <redacted>");
/// assert_eq!(password.expose(), "carrier-secret");
/// ```
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value; from here on it prints as `<redacted>`.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that needs it (a digest, a comparison, a key).
    #[must_use]
    pub const fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T: Zeroize + AsRef<[u8]>> PartialEq for Secret<T> {
    /// Constant-time for equal lengths, so a comparison cannot be timed byte by byte.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_ref(), other.0.as_ref());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl<T: Zeroize + AsRef<[u8]>> Eq for Secret<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_nothing_of_the_value() {
        let s = Secret::new(String::from("hunter2"));
        for shown in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{s}"),
            format!("{:?}", Some(&s)),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let key = Secret::new([0xabu8; 32]);
        assert!(!format!("{key:?}").contains("171"));
    }

    #[test]
    fn compares_by_value() {
        let a = Secret::new(String::from("abc"));
        assert_eq!(a, a.clone());
        assert_ne!(a, Secret::new(String::from("abd")));
        assert_ne!(a, Secret::new(String::from("abcd")));
        assert_eq!(a.expose(), "abc");
    }
}
