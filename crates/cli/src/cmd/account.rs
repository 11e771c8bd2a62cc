//! `sipwarden account add USER`: create an account in the accounts file, as HA1 digests only.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use sipwarden_config::AccountsFile;
use sipwarden_sip::digest::{Algorithm, ha1};

#[derive(Subcommand)]
pub(crate) enum AccountCommand {
    /// Add an account. Reads its password from standard input (one line), or with --generate
    /// makes a strong one and prints it once. Only HA1 digests (MD5, SHA-256, SHA-512-256) are
    /// written; the password is not stored anywhere.
    Add {
        /// The user (extension) name.
        user: String,
        /// The accounts file (created, readable by its owner only, if missing).
        #[arg(long, short, default_value = "accounts.toml")]
        file: PathBuf,
        /// Realm for a new file (an existing file's realm is used otherwise).
        #[arg(long)]
        realm: Option<String>,
        /// Generate a random 24-character password and print it.
        #[arg(long)]
        generate: bool,
        /// Networks the account may register and call from (repeatable).
        #[arg(long = "network")]
        networks: Vec<String>,
    },
    /// Refuse new calls by an account at once, in a running gateway (the kill switch).
    Disable {
        /// The user (extension) name.
        user: String,
        /// Also end every running call of the account, on both legs.
        #[arg(long)]
        hangup: bool,
        #[command(flatten)]
        api: super::ban::Api,
    },
    /// Let a disabled account place calls again.
    Enable {
        /// The user (extension) name.
        user: String,
        #[command(flatten)]
        api: super::ban::Api,
    },
}

pub(crate) fn run(cmd: AccountCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountCommand::Add {
            user,
            file,
            realm,
            generate,
            networks,
        } => add(&user, &file, realm, generate, &networks),
        AccountCommand::Disable { user, hangup, api } => {
            super::trunk::switch(&api, "accounts", &user, Some(hangup))
        }
        AccountCommand::Enable { user, api } => super::trunk::switch(&api, "accounts", &user, None),
    }
}

/// 24 characters from letters, digits and symbols, from the OS's randomness (rejection
/// sampling keeps every character equally likely).
fn generate_password() -> anyhow::Result<String> {
    use std::io::Read;
    const ALPHABET: &[u8] =
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%&*+-=?@^_";
    let mut urandom = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    let mut out = String::with_capacity(24);
    let limit = 256 - 256 % ALPHABET.len();
    while out.len() < 24 {
        let mut b = [0u8; 1];
        urandom.read_exact(&mut b)?;
        let [byte] = b;
        if usize::from(byte) < limit {
            if let Some(&c) = ALPHABET.get(usize::from(byte) % ALPHABET.len()) {
                out.push(char::from(c));
            }
        }
    }
    Ok(out)
}

fn add(
    user: &str,
    file: &Path,
    realm: Option<String>,
    generate: bool,
    networks: &[String],
) -> anyhow::Result<ExitCode> {
    let existing = if file.exists() {
        let f = AccountsFile::load(file).map_err(|e| {
            anyhow::anyhow!(
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
        if f.get(user).is_some() {
            bail!("{}: account {user:?} exists already", file.display());
        }
        if realm.as_deref().is_some_and(|r| r != f.realm) {
            bail!("{}: the file's realm is {:?}", file.display(), f.realm);
        }
        Some(f)
    } else {
        None
    };
    let realm = match (&existing, realm) {
        (Some(f), _) => f.realm.clone(),
        (None, Some(r)) => r,
        (None, None) => bail!(
            "{} does not exist: give --realm to create it",
            file.display()
        ),
    };
    let password = if generate {
        generate_password()?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        if p.len() < 12 {
            bail!("the password must have at least 12 characters (or use --generate)");
        }
        p
    };
    let mut block = format!("\n[[account]]\nuser = \"{user}\"\n");
    for (alg, key) in [
        (Algorithm::Md5, "ha1_md5"),
        (Algorithm::Sha256, "ha1_sha256"),
        (Algorithm::Sha512_256, "ha1_sha512_256"),
    ] {
        block.push_str(&format!(
            "{key} = \"{}\"\n",
            ha1(alg, user, &realm, &password).as_str()
        ));
    }
    if !networks.is_empty() {
        let list: Vec<String> = networks.iter().map(|n| format!("\"{n}\"")).collect();
        block.push_str(&format!("networks = [{}]\n", list.join(", ")));
    }
    let text = match &existing {
        Some(_) => std::fs::read_to_string(file)? + &block,
        None => format!(
            "# sipwarden accounts: HA1 digests only (sipwarden account add USER)\nrealm = \"{realm}\"\n{block}"
        ),
    };
    // Check the result before writing it, so a bad --network never lands in the file.
    AccountsFile::from_toml(&text, Some(file)).map_err(|e| {
        anyhow::anyhow!(
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    if existing.is_some() {
        std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
    } else {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .with_context(|| format!("creating {}", file.display()))?;
        f.write_all(text.as_bytes())?;
    }
    if generate {
        println!("{password}");
    }
    eprintln!("sipwarden: account {user:?} added to {}", file.display());
    Ok(ExitCode::SUCCESS)
}
