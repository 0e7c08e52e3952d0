//! What the commands print, in one place: the API's JSON with `--format json`, aligned tables and
//! key-value lines otherwise.
//!
//! A command builds its request, calls the API and hands the answer to [`Output`], which picks
//! the form: [`Output::list`] for lists, [`Output::show`] for one object, [`Output::changed`]
//! after an edit, [`Output::custom`] where the human form is a sentence or a secret. How a value
//! reads in a terminal is its [`Render`] impl, given the [`Style`] of this run: times pass through
//! [`Style::time`] (local time, or RFC 3339 UTC with `--iso-timestamps`), states through
//! [`Style::state`] (coloured on a terminal unless `--no-color` or `NO_COLOR`). JSON is always
//! the API's own, times in RFC 3339; a list is a bare array of every item, as op prints one.

use std::io::IsTerminal;

use clap::ValueEnum;
use connect_manager_core::Timestamp;
use serde::Serialize;
use time::{OffsetDateTime, UtcOffset};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    HumanReadable,
    Json,
}

/// How an API value reads in a terminal: a table row among others like it, or key-value lines
/// on its own. The JSON form is always the API's own (its `Serialize`).
pub trait Render: Serialize {
    /// The table's column headers (upper-cased when printed).
    const COLUMNS: &'static [&'static str];

    /// This value's table row, one cell per column.
    fn row(&self, style: &Style) -> Vec<String>;

    /// This value on its own (`get`): key-value lines. Default: the row under its columns.
    fn fields(&self, style: &Style) -> Vec<(&'static str, String)> {
        Self::COLUMNS.iter().copied().zip(self.row(style)).collect()
    }
}

/// How values read in a terminal in this run: times and colour.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// RFC 3339 UTC (`--iso-timestamps`) rather than local time.
    pub iso_timestamps: bool,
    /// Colour the states (a terminal, no `--no-color`, no `NO_COLOR`).
    pub color: bool,
}

impl Style {
    /// Colour when standard output is a terminal, `--no-color` was not given and `NO_COLOR` is
    /// unset or empty (no-color.org).
    pub fn new(iso_timestamps: bool, no_color: bool) -> Self {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            iso_timestamps,
            color: !no_color && !no_color_env && std::io::stdout().is_terminal(),
        }
    }

    /// How a time reads: local time (`2026-12-03 17:04:05`), or RFC 3339 UTC as the API writes
    /// it with `--iso-timestamps`; `never` for none (an expiry, a last use).
    pub fn time(&self, t: impl Into<Option<Timestamp>>) -> String {
        let Some(t) = t.into() else {
            return "never".into();
        };
        if self.iso_timestamps {
            return t.to_rfc3339();
        }
        match OffsetDateTime::from_unix_timestamp(t.unix_seconds()) {
            Ok(utc) => {
                let l = utc.to_offset(local_offset(t.unix_seconds()));
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                    l.year(),
                    u8::from(l.month()),
                    l.day(),
                    l.hour(),
                    l.minute(),
                    l.second()
                )
            }
            Err(_) => t.to_rfc3339(),
        }
    }

    /// A state (`ACTIVE`, `REVOKED`, `DELETED`, …): green when active, red when revoked or
    /// deleted, yellow when expired, if colour is on.
    pub fn state(&self, state: &str) -> String {
        let code = match state {
            _ if !self.color => return state.to_owned(),
            s if s.contains("expired") => "33",
            "ACTIVE" => "32",
            "REVOKED" | "DELETED" => "31",
            _ => return state.to_owned(),
        };
        format!("\x1b[{code}m{state}\x1b[0m")
    }
}

/// This machine's offset from UTC at `unix_seconds` (its time zone, `TZ`, daylight saving
/// included); UTC where it cannot be known.
fn local_offset(unix_seconds: i64) -> UtcOffset {
    #[cfg(unix)]
    {
        #[allow(
            irrefutable_let_patterns,
            reason = "time_t is 64 bits here, 32 on some targets"
        )]
        let Ok(at) = libc::time_t::try_from(unix_seconds) else {
            return UtcOffset::UTC;
        };
        let mut tm = std::mem::MaybeUninit::<libc::tm>::uninit();
        // SAFETY: localtime_r is thread-safe and writes only to `tm`; it reads the environment
        // (`TZ`), which this program never changes while it runs. A null return is an error and
        // leaves `tm` unread.
        let tm = unsafe {
            if libc::localtime_r(&at, tm.as_mut_ptr()).is_null() {
                return UtcOffset::UTC;
            }
            tm.assume_init()
        };
        i32::try_from(tm.tm_gmtoff)
            .ok()
            .and_then(|s| UtcOffset::from_whole_seconds(s).ok())
            .unwrap_or(UtcOffset::UTC)
    }
    #[cfg(not(unix))]
    {
        let _ = unix_seconds;
        UtcOffset::UTC
    }
}

/// The output options of one run of a client command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
    pub style: Style,
}

impl Output {
    pub fn new(format: Format, style: Style) -> Self {
        Output { format, style }
    }

    /// A whole list (every page, read by the client): a bare JSON array, as op prints a list,
    /// or a table.
    pub fn list<T: Render>(&self, items: Vec<T>) -> anyhow::Result<()> {
        self.custom(&items, || self.table(&items))
    }

    /// One object: key-value lines (`get`, and `create` where it shows the object).
    pub fn show<T: Render>(&self, value: &T) -> anyhow::Result<()> {
        self.custom(value, || fields(&value.fields(&self.style)))
    }

    /// One object with a table of what belongs to it under a heading (`server get` and the
    /// server's trust policies); in JSON, the object alone, as the API answers it.
    pub fn show_with<T: Render, C: Render>(
        &self,
        value: &T,
        heading: &str,
        children: &[C],
    ) -> anyhow::Result<()> {
        self.custom(value, || {
            fields(&value.fields(&self.style));
            if !children.is_empty() {
                println!("\n{heading}:");
                self.table(children);
            }
        })
    }

    /// One object as a table of one row (`create` where op prints a row).
    pub fn row<T: Render>(&self, value: &T) -> anyhow::Result<()> {
        self.custom(value, || self.table(std::slice::from_ref(value)))
    }

    /// The object a change answered with: printed in JSON only; a person sees nothing, as with
    /// op's edits.
    pub fn changed<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        self.custom(value, || {})
    }

    /// The JSON of `value`, or what `human` prints (a sentence, a secret shown once, …).
    pub fn custom<T: Serialize>(&self, value: &T, human: impl FnOnce()) -> anyhow::Result<()> {
        match self.format {
            Format::Json => json(value),
            Format::HumanReadable => {
                human();
                Ok(())
            }
        }
    }

    /// The rows of `items` under their columns.
    pub fn table<T: Render>(&self, items: &[T]) {
        table(
            Some(T::COLUMNS),
            items.iter().map(|i| i.row(&self.style)).collect(),
        );
    }

    /// More items of a list that goes on (`audit list --follow`): in JSON one compact object a
    /// line, as they come (an array would never end); otherwise table rows, under the headers
    /// when `first`.
    pub fn more<T: Render>(&self, items: &[T], first: bool) -> anyhow::Result<()> {
        match self.format {
            Format::Json => {
                for item in items {
                    println!("{}", serde_json::to_string(item)?);
                }
            }
            Format::HumanReadable => table(
                first.then_some(T::COLUMNS),
                items.iter().map(|i| i.row(&self.style)).collect(),
            ),
        }
        Ok(())
    }
}

fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Columns padded to their widest cell, upper-case headers (if any), like op's tables.
fn table(headers: Option<&[&str]>, rows: Vec<Vec<String>>) {
    let columns = headers.map_or_else(|| rows.first().map_or(0, Vec::len), <[&str]>::len);
    let mut widths: Vec<usize> = match headers {
        Some(headers) => headers.iter().map(|h| width(h)).collect(),
        None => vec![0; columns],
    };
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(w - width(cell) + 4));
            }
        }
        println!("{}", out.trim_end());
    };
    if let Some(headers) = headers {
        line(headers.iter().map(|h| h.to_uppercase()).collect());
    }
    for row in rows {
        line(row);
    }
}

/// Key-value lines for one object.
fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in pairs {
        println!("{:<width$} {v}", format!("{k}:"));
    }
}

/// The columns a cell takes on a terminal: its characters, less colour escapes.
fn width(cell: &str) -> usize {
    let mut n = 0;
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // `ESC [ … m`
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_coloured_only_when_asked_and_tables_align_on_what_shows() {
        let plain = Style {
            iso_timestamps: true,
            color: false,
        };
        let coloured = Style {
            color: true,
            ..plain
        };
        assert_eq!(plain.state("ACTIVE"), "ACTIVE");
        assert_eq!(coloured.state("ACTIVE"), "\x1b[32mACTIVE\x1b[0m");
        assert_eq!(coloured.state("REVOKED"), "\x1b[31mREVOKED\x1b[0m");
        assert_eq!(width(&coloured.state("ACTIVE (expired)")), 16);
        assert_eq!(plain.time(Timestamp(0)), "1970-01-01T00:00:00Z");
        assert_eq!(plain.time(None), "never");
    }
}
