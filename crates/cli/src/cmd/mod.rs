//! One module per subcommand.

pub(crate) mod account;
pub(crate) mod audit;
pub(crate) mod ban;
pub(crate) mod cdr;
pub(crate) mod check;
pub(crate) mod secret;
pub(crate) mod serve;
pub(crate) mod sip;
pub(crate) mod trunk;
