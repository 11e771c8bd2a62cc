//! The house rules that are about the workspace's shape rather than about one crate's code:
//! crate dependencies point the way DESIGN.md §3a draws them, only the I/O crates may read a
//! clock or spawn (clippy.toml), and every crate but this dev-only one denies panics.
//!
//! The workspace is read with `cargo metadata --no-deps`: declared dependencies, so a crate
//! that depends on another without using it still counts, as it should.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace's crates by short name (`sipwarden-b2bua` → `b2bua`; the binary's package
/// is `sipwarden` → `cli`).
fn short(package: &str) -> &str {
    match package {
        "sipwarden" => "cli",
        p => p.strip_prefix("sipwarden-").unwrap_or(p),
    }
}

/// Which workspace crates each crate may have as normal dependencies. `design` is the
/// drawing of DESIGN.md §3a (and, for the crates it does not draw, docs/architecture.md);
/// `deviations` are the dependencies the code has beyond it today, each with its reason.
/// A deviation that is no longer there fails the test too, so the table stays true.
struct Rule {
    design: &'static [&'static str],
    deviations: &'static [(&'static str, &'static str)],
}

/// Every crate below the server: what "server → everything" means.
const BELOW_SERVER: &[&str] = &[
    "sip",
    "txn",
    "config",
    "events",
    "store",
    "stages",
    "policy",
    "dns",
    "media",
    "relay",
    "b2bua",
    "transport",
    "audit",
];

fn rules() -> BTreeMap<&'static str, Rule> {
    BTreeMap::from([
        (
            "sip",
            Rule {
                design: &[],
                deviations: &[],
            },
        ),
        (
            "txn",
            Rule {
                design: &["sip"],
                deviations: &[],
            },
        ),
        (
            // Not drawn in §3a; architecture.md: the typed configuration, whose values
            // are sip's types (transport, URI syntax, digest algorithm names, Secret).
            "config",
            Rule {
                design: &["sip"],
                deviations: &[],
            },
        ),
        (
            // Not drawn in §3a; architecture.md: the security-event model and its log
            // lines, with sip's transport type.
            "events",
            Rule {
                design: &["sip"],
                deviations: &[],
            },
        ),
        (
            "store",
            Rule {
                design: &[],
                deviations: &[],
            },
        ),
        (
            "stages",
            Rule {
                design: &["sip"],
                deviations: &[(
                    "config",
                    "CallRequest hands call policies the caller's and callee's AccountConfig",
                )],
            },
        ),
        (
            "policy",
            Rule {
                design: &["sip", "stages"],
                deviations: &[
                    (
                        "config",
                        "the SRTP policy reads AccountConfig::media_encryption",
                    ),
                    (
                        "media",
                        "the media-anchoring rewrites apply sipwarden-media's SDP plan and \
                         queue its relay operations, or queue rtpengine's offers and answers \
                         (ng::Exchange, ng::Flags)",
                    ),
                ],
            },
        ),
        (
            "b2bua",
            Rule {
                design: &["sip", "txn", "stages"],
                deviations: &[
                    (
                        "config",
                        "Routes, DefenceSettings and the challenge table are built from Config \
                         inside b2bua, and Routes::from_config reads the trunk password and \
                         accounts files (the server runs it off the core task, but the I/O \
                         is still b2bua code)",
                    ),
                    (
                        "events",
                        "the core produces the SecurityEvents fail2ban reads; the model only, \
                         their writer is the server's",
                    ),
                    (
                        "dns",
                        "the core orders a trunk's DNS targets per call (RFC 2782) and \
                         builds the fixed target of a trunk given by address; sans-io, the \
                         server makes the queries",
                    ),
                ],
            },
        ),
        (
            // Not drawn in §3a; architecture.md: RFC 3263 location, sans-io, with sip's
            // transport type. The server makes its queries.
            "dns",
            Rule {
                design: &["sip"],
                deviations: &[],
            },
        ),
        (
            "media",
            Rule {
                design: &["sip"],
                deviations: &[],
            },
        ),
        (
            // Not drawn in §3a (the drawing puts the relay in `media`; it does I/O, so it is a
            // crate of its own, as transport is): depends on nothing of ours.
            "relay",
            Rule {
                design: &[],
                deviations: &[],
            },
        ),
        (
            "transport",
            Rule {
                design: &["sip"],
                deviations: &[],
            },
        ),
        (
            "server",
            Rule {
                design: BELOW_SERVER,
                deviations: &[],
            },
        ),
        (
            "audit",
            Rule {
                design: &["config"],
                deviations: &[],
            },
        ),
        (
            "cli",
            Rule {
                design: &["server", "audit"],
                deviations: &[
                    (
                        "sip",
                        "`sipwarden account add` computes HA1s and `sipwarden sip` parses \
                         messages",
                    ),
                    (
                        "config",
                        "`check`, `ban` and `account` read configuration and accounts files",
                    ),
                ],
            },
        ),
        (
            // Dev-only: a dev-dependency of the crates whose tests use it, never a normal one.
            "testkit",
            Rule {
                design: &["sip", "config", "b2bua", "policy"],
                deviations: &[
                    (
                        "relay",
                        "the media benchmark's load tool (src/bin/media_load.rs) hosts the \
                         relay bare",
                    ),
                    (
                        "media",
                        "the media benchmark's load tool drives rtpengine with the ng \
                         requests the server sends",
                    ),
                ],
            },
        ),
    ])
}

/// The crates that do I/O on purpose and so have a clippy.toml of their own, without the
/// workspace's sans-io bans.
const IO_CRATES: &[&str] = &["server", "transport", "relay", "cli", "audit", "testkit"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Package {
    name: String,
    dir: PathBuf,
    /// The library's (or else the binary's) root source file.
    root_file: PathBuf,
    /// (dependency, kind): kind is "normal", "dev" or "build".
    deps: Vec<(String, String)>,
}

fn workspace() -> Vec<Package> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(root().join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let names: BTreeSet<&str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let targets = p["targets"].as_array().expect("targets");
            let root_of = |kind: &str| {
                targets
                    .iter()
                    .find(|t| {
                        t["kind"]
                            .as_array()
                            .is_some_and(|k| k.iter().any(|k| k == kind))
                    })
                    .and_then(|t| t["src_path"].as_str())
            };
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            Package {
                name: short(p["name"].as_str().expect("name")).to_owned(),
                dir: manifest.parent().expect("a crate directory").to_owned(),
                root_file: root_of("lib")
                    .or_else(|| root_of("bin"))
                    .expect("a lib or bin target")
                    .into(),
                deps: p["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .filter_map(|d| {
                        let name = d["name"].as_str()?;
                        names.contains(name).then(|| {
                            let kind = d["kind"].as_str().unwrap_or("normal");
                            (short(name).to_owned(), kind.to_owned())
                        })
                    })
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn crate_dependencies_point_the_way_design_draws_them() {
    let rules = rules();
    let packages = workspace();
    let mut wrong = Vec::new();
    for p in &packages {
        let Some(rule) = rules.get(p.name.as_str()) else {
            wrong.push(format!(
                "{}: a crate the table does not know: add it with the dependencies DESIGN §3a \
                 allows it",
                p.name
            ));
            continue;
        };
        let normal: BTreeSet<&str> = p
            .deps
            .iter()
            .filter(|(_, kind)| kind != "dev")
            .map(|(d, _)| d.as_str())
            .collect();
        for d in &normal {
            let allowed =
                rule.design.contains(d) || rule.deviations.iter().any(|(dev, _)| dev == d);
            if !allowed {
                wrong.push(format!(
                    "{} -> {d}: not in DESIGN §3a's drawing; remove it, or list it as a \
                     deviation with its reason (and update docs/architecture.md)",
                    p.name
                ));
            }
        }
        for (d, _) in rule.deviations {
            if !normal.contains(d) {
                wrong.push(format!(
                    "{} -> {d} is gone: remove the deviation from the table and \
                     docs/architecture.md",
                    p.name
                ));
            }
        }
        // Dev-dependencies may differ (tests use testkit and what they drive), but testkit
        // is never a normal one.
        if normal.contains("testkit") {
            wrong.push(format!("{} -> testkit: testkit is dev-only", p.name));
        }
    }
    let present: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    for name in rules.keys() {
        if !present.contains(name) {
            wrong.push(format!("{name}: in the table but not in the workspace"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn only_the_io_crates_may_read_a_clock_or_spawn() {
    let bans =
        std::fs::read_to_string(root().join("clippy.toml")).expect("the workspace clippy.toml");
    for method in [
        "std::time::Instant::now",
        "std::time::SystemTime::now",
        "std::thread::spawn",
        "std::thread::sleep",
        "tokio::task::spawn",
    ] {
        assert!(
            bans.contains(&format!("path = \"{method}\"")),
            "clippy.toml must ban {method}"
        );
    }
    let mut wrong = Vec::new();
    for p in workspace() {
        // Clippy reads the nearest clippy.toml only: one in the crate's directory replaces
        // the workspace's bans.
        let own = p.dir.join("clippy.toml").exists() || p.dir.join(".clippy.toml").exists();
        let io = IO_CRATES.contains(&p.name.as_str());
        if own && !io {
            wrong.push(format!(
                "{}: its own clippy.toml switches off the sans-io bans",
                p.name
            ));
        }
        if io && !own {
            wrong.push(format!(
                "{}: listed as an I/O crate without a clippy.toml",
                p.name
            ));
        }
        if io {
            continue;
        }
        // Nor may a sans-io crate allow the lint outside its tests.
        for file in rust_files(&p.dir.join("src")) {
            let text: String = std::fs::read_to_string(&file)
                .expect("source file")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let allows = text.matches("allow(clippy::disallowed_methods)").count();
            let in_tests = text
                .matches("cfg_attr(test,allow(clippy::disallowed_methods))")
                .count();
            let test_module = file.file_name().is_some_and(|f| f == "tests.rs");
            if allows > in_tests && !test_module {
                wrong.push(format!(
                    "{}: allows clippy::disallowed_methods outside tests",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn every_crate_but_testkit_denies_panics() {
    let block = "#![cfg_attr(not(test),deny(clippy::unwrap_used,clippy::expect_used,\
                 clippy::panic,clippy::indexing_slicing))]";
    let mut wrong = Vec::new();
    for p in workspace() {
        if p.name == "testkit" {
            continue;
        }
        let text: String = std::fs::read_to_string(&p.root_file)
            .expect("crate root")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !text.contains(block) {
            wrong.push(format!(
                "{}: no `#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, \
                 clippy::panic, clippy::indexing_slicing))]`",
                p.root_file.display()
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("source directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}
