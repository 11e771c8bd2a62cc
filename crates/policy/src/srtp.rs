//! Encrypted media for accounts that require it (`media_encryption = "required"`): a call
//! from or to such an account must offer SRTP on every active stream, or it is refused with
//! 488 before it reaches the other side.

use sipwarden_config::MediaEncryption;
use sipwarden_sip::StatusCode;
use sipwarden_stages::{CallPolicy, CallRequest, Reason, Verdict};

/// The SRTP rule of accounts.
#[derive(Clone, Copy, Debug, Default)]
pub struct SrtpRequired;

/// Whether every active media stream of an offer is SRTP (SDES or DTLS keyed). No SDP (a
/// late offer) is not SRTP: the answer would come too late to refuse.
pub fn only_srtp(body: &[u8]) -> bool {
    let Ok(sdp) = sipwarden_sip::sdp::parse(body) else {
        return false;
    };
    let mut active = sdp.media.iter().filter(|m| m.is_active()).peekable();
    active.peek().is_some() && active.all(|m| m.transport.is_srtp())
}

impl CallPolicy for SrtpRequired {
    fn name(&self) -> &'static str {
        "srtp"
    }

    fn admit(&mut self, call: &CallRequest<'_>) -> Verdict {
        let required = [call.account, call.callee_account]
            .into_iter()
            .flatten()
            .any(|a| a.media_encryption == MediaEncryption::Required);
        if required && !call.offer.is_some_and(only_srtp) {
            return Verdict::Reply {
                status: StatusCode::NOT_ACCEPTABLE_HERE,
                reason: Reason::SrtpRequired,
                phrase: Some("SRTP Required"),
                headers: Vec::new(),
            };
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_srtp_offers_pass() {
        let plain = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let sdes = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        let dtls = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 AA:BB\r\n";
        assert!(!only_srtp(plain));
        assert!(only_srtp(sdes));
        assert!(only_srtp(dtls));
        assert!(!only_srtp(b""), "a late offer is not SRTP");
    }
}
