//! One module per subcommand.

pub(crate) mod serve;
pub(crate) mod sip;
