//! Why a login failed, as a type: the security event written for fail2ban, the JSON log's
//! reason and the counters are chosen from it, never from message text.

/// One kind of failed digest authentication. Every kind gets the same answers on the wire
/// (a fresh challenge, then 403), so only the logs tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// No such account (the same work as a wrong password is done anyway).
    UnknownAccount,
    /// The response does not prove the password.
    WrongPassword,
    /// The account may not be used from this source network.
    WrongNetwork,
    /// The account may not be used over this transport.
    WrongTransport,
    /// The credentials are for another user than the registered address or the From user.
    AorMismatch,
    /// Right credentials, refused: the account is locked against this address after a
    /// guessing run from other addresses.
    AccountLocked,
    /// A nonce we did not issue to this address (or did not issue at all).
    ForeignNonce,
    /// An algorithm the challenge did not offer (or one we never offer).
    AlgorithmNotOffered,
    /// Credentials that cannot be read, or lack a field digest needs.
    Malformed,
    /// The `uri` of the credentials is not the Request-URI.
    UriMismatch,
}

impl AuthFailure {
    /// Every kind, for tests and metric label sets.
    pub const ALL: [Self; 10] = [
        Self::UnknownAccount,
        Self::WrongPassword,
        Self::WrongNetwork,
        Self::WrongTransport,
        Self::AorMismatch,
        Self::AccountLocked,
        Self::ForeignNonce,
        Self::AlgorithmNotOffered,
        Self::Malformed,
        Self::UriMismatch,
    ];

    /// A stable code for metric labels and machine-read logs.
    pub const fn code(self) -> &'static str {
        match self {
            Self::UnknownAccount => "unknown_account",
            Self::WrongPassword => "wrong_password",
            Self::WrongNetwork => "wrong_network",
            Self::WrongTransport => "wrong_transport",
            Self::AorMismatch => "aor_mismatch",
            Self::AccountLocked => "account_locked",
            Self::ForeignNonce => "foreign_nonce",
            Self::AlgorithmNotOffered => "algorithm_not_offered",
            Self::Malformed => "malformed_credentials",
            Self::UriMismatch => "uri_mismatch",
        }
    }

    /// Words for the operator, as the logs have always said them.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::UnknownAccount => "unknown account",
            Self::WrongPassword => "wrong password",
            Self::WrongNetwork => "source network not allowed for the account",
            Self::WrongTransport => "transport not allowed for the account",
            Self::AorMismatch => "username differs from the registered address",
            Self::AccountLocked => "account locked: too many failures from other addresses",
            Self::ForeignNonce => "nonce not issued to this address",
            Self::AlgorithmNotOffered => "algorithm not offered",
            Self::Malformed => "malformed credentials",
            Self::UriMismatch => "digest uri differs from the Request-URI",
        }
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_words_are_distinct() {
        let mut codes: Vec<&str> = AuthFailure::ALL.iter().map(|f| f.code()).collect();
        let mut words: Vec<&str> = AuthFailure::ALL.iter().map(|f| f.describe()).collect();
        codes.sort_unstable();
        codes.dedup();
        words.sort_unstable();
        words.dedup();
        assert_eq!(codes.len(), AuthFailure::ALL.len());
        assert_eq!(words.len(), AuthFailure::ALL.len());
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
