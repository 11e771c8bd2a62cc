//! `sipwarden sip check` end to end: the real binary on the RFC 4475 corpus, on a stream of
//! concatenated messages, and on standard input.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sip/tests/data/rfc4475")
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn one_line_per_datagram_with_the_manifest_outcome() {
    let files: Vec<String> = [
        "wsinv.dat",
        "noreason.dat",
        "badvers.dat",
        "bigcode.dat",
        "invut.dat",
    ]
    .iter()
    .map(|f| corpus().join(f).to_string_lossy().into_owned())
    .collect();
    let args: Vec<&str> = ["sip", "check"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = run(&args, None);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].ends_with("wsinv.dat: ok request INVITE"), "{text}");
    assert!(
        lines[1].ends_with("noreason.dat: ok response 100"),
        "{text}"
    );
    assert!(
        lines[2].ends_with("badvers.dat: reject 505 Version Not Supported"),
        "{text}"
    );
    assert!(lines[3].contains("bigcode.dat: drop "), "{text}");
    assert!(lines[4].contains("invut.dat: reject 415 "), "{text}");
    assert_eq!(out.status.code(), Some(1));

    let ok = run(&["sip", "check", &files[0], &files[1]], None);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
}

#[test]
fn whole_corpus_gets_one_line_each() {
    let mut files: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.sort();
    let args: Vec<&str> = ["sip", "check"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = run(&args, None);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 49, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains(": ok ")).count(),
        21,
        "{text}"
    );
}

#[test]
fn stream_frames_concatenated_messages_from_stdin() {
    let mut stream = Vec::new();
    for f in ["esc01.dat", "cparam01.dat", "noreason.dat"] {
        stream.extend_from_slice(&std::fs::read(corpus().join(f)).unwrap());
        stream.extend_from_slice(b"\r\n\r\n"); // a keep-alive ping between messages
    }
    let out = run(&["sip", "check", "--stream", "-"], Some(&stream));
    let text = stdout(&out);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "-: ok request INVITE",
            "-: ok request REGISTER",
            "-: ok response 100"
        ],
        "{text}"
    );
    assert_eq!(out.status.code(), Some(0));

    // A message without Content-Length breaks a stream: reported, and nothing after it is read.
    let mut bad = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n".to_vec();
    bad.extend_from_slice(&std::fs::read(corpus().join("esc01.dat")).unwrap());
    let out = run(&["sip", "check", "--stream", "-"], Some(&bad));
    let text = stdout(&out);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["-: reject 400 Missing Content-Length; stream closed"],
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn datagram_from_stdin_and_missing_file() {
    let msg = std::fs::read(corpus().join("zeromf.dat")).unwrap();
    let out = run(&["sip", "check", "-"], Some(&msg));
    assert_eq!(stdout(&out), "-: reject 483 Too Many Hops\n");
    let out = run(&["sip", "check", "/nonexistent/file.sip"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/file.sip"));
}
