//! Identifiers the gateway mints: tags, branches, Call-IDs. They come from a CSPRNG so that a
//! peer who sees one leg cannot guess the other leg's dialog (and forge a BYE into it), and
//! they carry nothing about the gateway or the PBX.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Source of identifiers. Seeded by the caller (sans-io): the server seeds it from the OS,
/// tests from a constant.
pub(crate) struct Ids {
    rng: StdRng,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Ids {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        Self {
            rng: StdRng::from_seed(seed),
        }
    }

    fn hex(&mut self, bytes: usize) -> String {
        let mut raw = [0u8; 16];
        let n = bytes.min(raw.len());
        let buf = raw.get_mut(..n).unwrap_or_default();
        self.rng.fill_bytes(buf);
        let mut s = String::with_capacity(n * 2);
        for b in buf.iter() {
            s.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            s.push(char::from(
                HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0'),
            ));
        }
        s
    }

    /// A From/To tag (64 random bits).
    pub(crate) fn tag(&mut self) -> String {
        self.hex(8)
    }

    /// A Via branch with the RFC 3261 magic cookie (96 random bits).
    pub(crate) fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.hex(12))
    }

    /// A Call-ID (128 random bits, no host part: it would name the gateway).
    pub(crate) fn call_id(&mut self) -> String {
        self.hex(16)
    }

    /// A 256-bit secret key (for the nonce MAC).
    pub(crate) fn key(&mut self) -> [u8; 32] {
        let mut k = [0u8; 32];
        self.rng.fill_bytes(&mut k);
        k
    }

    /// 32 random bits (a nonce's salt).
    pub(crate) fn salt(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// A uniform draw in `0..=n` (the weighted choice among trunks and SRV targets).
    pub(crate) fn draw(&mut self, n: u32) -> u32 {
        use rand::Rng;
        self.rng.random_range(0..=n)
    }

    /// A client nonce for digest authentication.
    pub(crate) fn cnonce(&mut self) -> String {
        self.hex(16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let mut ids = Ids::new([7; 32]);
        let b = ids.branch();
        assert!(b.starts_with("z9hG4bK") && b.len() == 31);
        assert_eq!(ids.tag().len(), 16);
        assert_eq!(ids.call_id().len(), 32);
        assert_ne!(ids.tag(), ids.tag());
    }
}
