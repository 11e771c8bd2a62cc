//! Checks on files themselves: private keys readable by others, certificates expired or about to,
//! configuration files holding secrets readable by others.
//!
//! PLACEHOLDER: signatures only; the checks come next.

use std::path::Path;
use std::time::SystemTime;

use crate::{Finding, Location, Rule};

/// The rules of this module.
pub const RULES: &[Rule] = &[];

/// A private key file (`referenced_at`: the config line naming it, if any).
pub fn check_private_key(path: &Path, referenced_at: Option<&Location>) -> Vec<Finding> {
    let _ = (path, referenced_at);
    Vec::new()
}

/// A certificate file (PEM, one or more certificates), judged at `now`.
pub fn check_certificate(
    path: &Path,
    referenced_at: Option<&Location>,
    now: SystemTime,
) -> Vec<Finding> {
    let _ = (path, referenced_at, now);
    Vec::new()
}

/// A configuration file known to hold secrets.
pub fn check_secret_file_mode(path: &Path) -> Vec<Finding> {
    let _ = path;
    Vec::new()
}
