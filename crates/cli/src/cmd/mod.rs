//! One module per subcommand.

pub(crate) mod account;
pub(crate) mod ban;
pub(crate) mod serve;
pub(crate) mod sip;
