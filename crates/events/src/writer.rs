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
/// Synchronous and unbuffered: each line goes to the kernel in one `write` on a file opened
/// for appending, so fail2ban (or a second writer) never sees half a line, and nothing is
/// lost in a user-space buffer if the process dies. The caller batches events off the request
/// path.
#[derive(Debug)]
pub struct SecurityLog {
    asterisk: Option<File>,
    json: Option<File>,
    pid: u32,
    utc_offset_secs: i32,
}

impl SecurityLog {
    /// Opens (creating them and their directories if needed) the files that are given, for
    /// appending. New files get mode 0640 (less if the umask says so): owner writes, the
    /// group (fail2ban's, or adm) reads, others nothing, since the lines name accounts.
    ///
    /// Asterisk lines are written in UTC with this process's id; see
    /// [`with_utc_offset`](Self::with_utc_offset).
    pub fn open(asterisk_path: Option<&Path>, json_path: Option<&Path>) -> io::Result<Self> {
        Ok(Self {
            asterisk: asterisk_path.map(open_append).transpose()?,
            json: json_path.map(open_append).transpose()?,
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

    /// Appends `event`'s lines. Both files are tried; the first error is returned.
    pub fn write(&mut self, event: &SecurityEvent, time: SystemTime) -> io::Result<()> {
        let mut result = Ok(());
        if let Some(file) = &mut self.asterisk {
            if let Some(line) = asterisk_line(event, time, self.utc_offset_secs, self.pid) {
                result = write_line(file, line);
            }
        }
        if let Some(file) = &mut self.json {
            let written = write_line(file, json_line(event, time));
            result = result.and(written);
        }
        result
    }

    /// Flushes both files. Writes are unbuffered, so this does nothing today; callers call it
    /// at the end of a batch so that a buffered writer could take its place.
    pub fn flush(&mut self) -> io::Result<()> {
        let a = self.asterisk.as_mut().map_or(Ok(()), Write::flush);
        let j = self.json.as_mut().map_or(Ok(()), Write::flush);
        a.and(j)
    }
}

/// One `write_all` of the line and its newline together.
fn write_line(file: &mut File, mut line: String) -> io::Result<()> {
    line.push('\n');
    file.write_all(line.as_bytes())
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
