//! What the call core's tests and benchmarks share: the lab of LAB.md without sockets.
//!
//! [`Lab`] drives the sans-io [`sipwarden_b2bua::Core`] with scripted peers and simulated time:
//! the PBX on 127.0.0.10:5070 (UAC) / 127.0.0.10:5080 (UAS), the carrier on 127.0.0.3:5060,
//! phones on 127.0.0.2, the gateway on 127.0.0.1:5060. The builders write the messages those
//! peers send, and the steps ([`outbound_call`], [`register_with_auth`], [`invite_with_auth`])
//! play the exchanges many flows begin with, checking them on the way.
//!
//! Dev-only (`publish = false`): a dev-dependency of `sipwarden-b2bua`, never a normal one.
//! Helpers panic with a message instead of returning errors, as a test wants.
//!
//! ```
//! use sipwarden_testkit::{CARRIER, Lab, PBX_UAS, carrier_invite};
//!
//! let mut lab = Lab::new();
//! lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKdoc"));
//! lab.expect(PBX_UAS, "INVITE sip:+15551230042@127.0.0.10:5080");
//! ```

mod lab;
mod messages;
mod steps;

use std::net::SocketAddr;

use sipwarden_sip::Peer;
use sipwarden_sip::header::Transport;

pub use lab::Lab;
pub use messages::{
    SDP, answer, cancel_of, carrier_invite, contact_of, first_line, in_dialog, pbx_invite,
    register, respond,
};
pub use steps::{inbound_call, invite_with_auth, outbound_call, phone_lab, register_with_auth};

/// The lab's configuration (LAB.md): the PBX, and the carrier trunk with its networks, digest
/// credentials and DIDs. Tests that need more append TOML sections to it.
pub const LAB_CONFIG: &str = r#"
[pbx]
address = "127.0.0.10:5080"
networks = ["127.0.0.10/32"]

[[trunk]]
name = "carrier"
networks = ["127.0.0.3/32"]
proxy = "sip:127.0.0.3:5060"
username = "acct123"
danger_password = "carrier-secret-9f3b2c"
dids = ["+15551230000-+15551230099"]
max_call_duration = "1h"
"#;

/// The lab's accounts file (LAB.md's accounts as HA1 values), for an `[accounts] file` key.
pub const LAB_ACCOUNTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/lab/accounts.toml"
);

/// The gateway's UDP address.
pub const GATEWAY: &str = "127.0.0.1:5060";
/// The PBX as a caller (its UAC): calls out and to phones come from here.
pub const PBX_UAC: &str = "127.0.0.10:5070";
/// The PBX as a callee (its UAS, `[pbx] address`): calls from trunks and phones go here.
pub const PBX_UAS: &str = "127.0.0.10:5080";
/// The carrier trunk, both ways.
pub const CARRIER: &str = "127.0.0.3:5060";
/// A registered phone.
pub const PHONE: &str = "127.0.0.2:5062";
/// A second phone (or a second contact of the same account).
pub const PHONE2: &str = "127.0.0.2:5072";
/// Somewhere neither the PBX nor the carrier is: an attacker who learnt a call's identifiers.
pub const STRANGER: &str = "127.0.0.66:5060";
/// Account 1001's password (LAB.md).
pub const PW_1001: &str = "Kj9#mNp2xQ&vL5sW!aR7cYz3";

/// `s` as a socket address; panics on a typo.
pub fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} is not an address: {e}"))
}

/// A UDP peer at `s`, as the UDP transport names it to the core.
pub fn udp(s: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr(s),
        flow: None,
    }
}
