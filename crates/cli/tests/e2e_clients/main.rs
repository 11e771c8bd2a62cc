//! The client matrix of `docs/phones.md`: real phones and browser SIP stacks register and
//! call through the gateway in the lab of LAB.md, each with its own defaults. One test binary
//! for all of them, so that the lab's ports are taken by one process at a time and a browser
//! starts once.

#[path = "../common/mod.rs"]
mod common;

mod baresip;
mod browser;
mod linphone;
