//! What the commands print, in one place: the API's JSON with `--format json`, aligned tables and
//! key-value lines otherwise.
//!
//! A command builds its request, calls the API and hands the answer to [`Output`], which picks
//! the form: [`Output::list`] for lists, [`Output::show`] for one object, [`Output::changed`]
//! after an edit, [`Output::custom`] where the human form is a sentence or a secret. How a value
//! reads in a terminal is its [`Render`] impl. So a change to how everything prints (the JSON
//! shape of lists, times in local time, colour, a debug trace of the requests) is made here:
//! the options live in [`Output`], times pass through [`time`].

use clap::ValueEnum;
use connect_manager_core::Timestamp;
use connect_manager_core::page::Page;
use serde::Serialize;

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
    fn row(&self) -> Vec<String>;

    /// This value on its own (`get`): key-value lines. Default: the row under its columns.
    fn fields(&self) -> Vec<(&'static str, String)> {
        Self::COLUMNS.iter().copied().zip(self.row()).collect()
    }
}

/// The output options of one run of a client command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
}

impl Output {
    pub fn new(format: Format) -> Self {
        Output { format }
    }

    /// A whole list (every page, read by the client): the API's page shape with no further
    /// page in JSON, a table otherwise.
    pub fn list<T: Render>(&self, items: Vec<T>) -> anyhow::Result<()> {
        match self.format {
            Format::Json => json(&Page {
                items,
                next_cursor: None,
            }),
            Format::HumanReadable => {
                print_table(&items);
                Ok(())
            }
        }
    }

    /// One object: key-value lines (`get`, and `create` where it shows the object).
    pub fn show<T: Render>(&self, value: &T) -> anyhow::Result<()> {
        self.custom(value, || fields(&value.fields()))
    }

    /// One object as a table of one row (`create` where op prints a row).
    pub fn row<T: Render>(&self, value: &T) -> anyhow::Result<()> {
        self.custom(value, || print_table(std::slice::from_ref(value)))
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
}

/// How a time reads: RFC 3339, UTC; `never` for none (an expiry, a last use).
pub fn time(t: impl Into<Option<Timestamp>>) -> String {
    t.into()
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "never".into())
}

fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The rows of `items` under their columns.
pub fn print_table<T: Render>(items: &[T]) {
    table(T::COLUMNS, items.iter().map(Render::row).collect());
}

/// Columns padded to their widest cell, upper-case headers, like op's tables.
fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}    "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
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
