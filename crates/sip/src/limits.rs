//! Bounds on what the parser accepts, checked before anything is allocated for it.

/// Parser limits. The defaults fit every legitimate message we know of (RFC 4475's `longreq`
/// included) and cap what a hostile peer can make the gateway hold per message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Whole message, start line to last body byte. Default 65 535 (the largest UDP payload).
    pub max_message_bytes: usize,
    /// Header section, start line to the blank line. Default 16 384.
    pub max_head_bytes: usize,
    /// Number of header rows. Default 100.
    pub max_headers: usize,
    /// One header row including its folded continuation lines. Default 4 096.
    pub max_header_line: usize,
    /// Request-URI length. Default 1 024 (longer is 414).
    pub max_uri_bytes: usize,
    /// Body length. Default 32 768.
    pub max_body_bytes: usize,
    /// Via values, counted across rows. Default 64 (RFC 4475 longreq carries 34).
    pub max_vias: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_head_bytes: 16_384,
            max_headers: 100,
            max_header_line: 4_096,
            max_uri_bytes: 1_024,
            max_body_bytes: 32_768,
            max_vias: 64,
        }
    }
}
