//! Appending the lines to files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use crate::asterisk::asterisk_line;
use crate::event::SecurityEvent;
use crate::json::json_line;

/// The security log files: the Asterisk-format file that fail2ban's `asterisk` jail reads
/// (its `logpath`), the JSON-lines file, or both.
///
/// Lines are gathered per file and go to the kernel together at [`SecurityLog::flush`] (or
/// when 64 KiB have gathered): whole lines only, in one `write` on a file opened for
/// appending, so fail2ban (or a second writer) never sees half a line, and a burst of events
/// costs one system call per file rather than one per line. The caller flushes at the end of
/// each batch, so nothing waits in the buffer longer than one turn of the call core.
#[derive(Debug)]
pub struct SecurityLog {
    asterisk: Option<(File, String)>,
    json: Option<(File, String)>,
    pid: u32,
    utc_offset_secs: i32,
}

/// Gathered bytes that trigger a write before the caller's flush.
const GATHER: usize = 64 * 1024;

impl SecurityLog {
    /// Opens (creating them and their directories if needed) the files that are given, for
    /// appending. New files get mode 0640 (less if the umask says so): owner writes, the
    /// group (fail2ban's, or adm) reads, others nothing, since the lines name accounts.
    ///
    /// Asterisk lines are written in UTC with this process's id; see
    /// [`with_utc_offset`](Self::with_utc_offset).
    pub fn open(asterisk_path: Option<&Path>, json_path: Option<&Path>) -> io::Result<Self> {
        Ok(Self {
            asterisk: asterisk_path
                .map(open_append)
                .transpose()?
                .map(|f| (f, String::new())),
            json: json_path
                .map(open_append)
                .transpose()?
                .map(|f| (f, String::new())),
            pid: std::process::id(),
            utc_offset_secs: 0,
        })
    }

    /// Writes the Asterisk lines' dates at this offset from UTC. fail2ban reads those dates as
    /// the host's local time unless the jail sets `logtimezone`, so pass the host's offset, or
    /// keep UTC and set `logtimezone = UTC` in the jail.
    pub fn with_utc_offset(mut self, utc_offset_secs: i32) -> Self {
        self.utc_offset_secs = utc_offset_secs;
        self
    }

    /// Adds `event`'s lines (written at the next [`SecurityLog::flush`], or now if much has
    /// gathered). Both files are tried; the first error is returned.
    pub fn write(&mut self, event: &SecurityEvent, time: SystemTime) -> io::Result<()> {
        let mut result = Ok(());
        if let Some((file, buf)) = &mut self.asterisk {
            if let Some(line) = asterisk_line(event, time, self.utc_offset_secs, self.pid) {
                result = gather(file, buf, &line);
            }
        }
        if let Some((file, buf)) = &mut self.json {
            let written = gather(file, buf, &json_line(event, time));
            result = result.and(written);
        }
        result
    }

    /// Writes what has gathered, whole lines in one `write` per file.
    pub fn flush(&mut self) -> io::Result<()> {
        let a = self.asterisk.as_mut().map_or(Ok(()), |(f, b)| drain(f, b));
        let j = self.json.as_mut().map_or(Ok(()), |(f, b)| drain(f, b));
        a.and(j)
    }
}

impl Drop for SecurityLog {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn gather(file: &mut File, buf: &mut String, line: &str) -> io::Result<()> {
    buf.push_str(line);
    buf.push('\n');
    if buf.len() >= GATHER {
        return drain(file, buf);
    }
    Ok(())
}

fn drain(file: &mut File, buf: &mut String) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let r = file.write_all(buf.as_bytes());
    buf.clear();
    r
}

fn open_append(path: &Path) -> io::Result<File> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(context)?;
    }
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    options.open(path).map_err(context)
}
