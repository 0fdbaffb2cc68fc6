//! The persistence file format of the reference server, version 3.
//!
//! A file is the 9 bytes `\0CLACKSV3`, a YAML mapping `key -> {data, cachetime, accesstime,
//! deleted}` and `\0CLACKSV3` again. Files of the older line format (base64 YAML maps of data,
//! cachetimes and, since v22, access times, then `ENDBYTES`) are read too and upgraded; keys that
//! only have a timestamp there become tombstones.
//!
//! Keys and values are bytes, not text: the body is read one byte per character (so any byte,
//! valid UTF-8 or not, comes back unchanged), and `\xNN` escapes stand for the byte `NN`, as in
//! YAML::Syck. YAML scalars are taken as their literal text (no type guessing), so `'2.75'` and
//! `2.75` both read as the bytes `2.75`, as the Perl reader sees them.
//!
//! Keys and values are written double-quoted: control bytes and, in a string that is not valid
//! UTF-8, every byte from 0x80 up are written as `\xNN` (YAML::Syck does the same). A key whose
//! quoted form is longer than [`LONG_KEY`] is written as an explicit key (`? "key"`), because YAML
//! parsers may refuse implicit keys longer than 1,024 characters; YAML::Syck reads both forms.

mod legacy;
mod read;
mod write;
mod yaml;

#[cfg(test)]
mod tests;

use thiserror::Error;

pub use read::decode;
pub use write::{encode, write_records};

/// The marker at the start and end of a version 3 file.
pub const MARKER: &[u8] = b"\0CLACKSV3";

/// Quoted keys longer than this many bytes are written as explicit keys (`? "key"`).
pub const LONG_KEY: usize = 512;

/// Where in a file reading stopped: a byte offset from the start of the file, and the line and
/// column (both from 1) of that byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset from the start of the file.
    pub offset: usize,
    /// Line, from 1.
    pub line: usize,
    /// Column in bytes, from 1.
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "byte {} (line {}, column {})",
            self.offset, self.line, self.column
        )
    }
}

/// Why a persistence file could not be read. Every variant says where in the file.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistError {
    /// Shorter than two markers.
    #[error(
        "file too small ({len} bytes, a complete file has at least 18): truncated at byte {len}"
    )]
    TooSmall {
        /// Its length.
        len: usize,
    },
    /// Starts with the marker but does not end with it (a truncated write).
    #[error("missing end marker at byte {len} (truncated file)")]
    MissingEndMarker {
        /// The file's length: where the end marker should end.
        len: usize,
    },
    /// The YAML body does not parse or is not a mapping of records.
    #[error("invalid YAML at {at}: {problem}")]
    InvalidYaml {
        /// Where the parser stopped.
        at: Position,
        /// What it found.
        problem: String,
    },
    /// Neither version 3 nor the older line format.
    #[error("unknown format at line {line}: {problem}")]
    UnknownFormat {
        /// The line (from 1) of the older format at fault; 1 when there is no marker at all.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

impl PersistError {
    /// The byte offset of the fault, when the error has one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            PersistError::TooSmall { len } | PersistError::MissingEndMarker { len } => Some(*len),
            PersistError::InvalidYaml { at, .. } => Some(at.offset),
            PersistError::UnknownFormat { .. } => None,
        }
    }
}

/// Which format a file was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `\0CLACKSV3` + YAML.
    V3,
    /// The base64 line format of versions before 24 (upgraded on load).
    Legacy,
}
