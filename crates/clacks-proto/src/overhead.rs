//! `OVERHEAD <flags> <value>` flag letters.
//!
//! The flags word is looked at character by character: unknown characters are ignored and the
//! order does not matter. When a line is re-emitted (the `G` flag) the flags are written back in
//! alphabetical order, or `Z` when none remain.

/// A set of OVERHEAD flag letters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u16);

/// The known flag letters in the order they are written.
const LETTERS: [u8; 14] = *b"ACDEFGILMNOSTU";

impl Flags {
    /// Authentication token.
    pub const AUTH: Flags = Flags::letter(b'A');
    /// Close all connections.
    pub const CLOSE_ALL: Flags = Flags::letter(b'C');
    /// Discard after logging.
    pub const DISCARD: Flags = Flags::letter(b'D');
    /// Error message.
    pub const ERROR: Flags = Flags::letter(b'E');
    /// Authentication failed.
    pub const AUTH_FAILED: Flags = Flags::letter(b'F');
    /// Forward to every connection.
    pub const FORWARD: Flags = Flags::letter(b'G');
    /// Switch the connection to interclacks mode.
    pub const INTERCLACKS: Flags = Flags::letter(b'I');
    /// Interclacks sync lock.
    pub const LOCK: Flags = Flags::letter(b'L');
    /// Informal message.
    pub const INFORMAL: Flags = Flags::letter(b'M');
    /// Do not log to monitors.
    pub const NO_LOGGING: Flags = Flags::letter(b'N');
    /// Authentication succeeded.
    pub const AUTH_OK: Flags = Flags::letter(b'O');
    /// Shut the server down after `value` seconds.
    pub const SHUTDOWN: Flags = Flags::letter(b'S');
    /// Peer clock, for offset compensation.
    pub const TIMESTAMP: Flags = Flags::letter(b'T');
    /// With `G`: the sender receives the re-emitted line too.
    pub const RETURN_TO_SENDER: Flags = Flags::letter(b'U');

    const fn letter(l: u8) -> Flags {
        let mut i = 0;
        while i < LETTERS.len() {
            if LETTERS[i] == l {
                return Flags(1 << i);
            }
            i += 1;
        }
        Flags(0)
    }

    /// No flags.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// Parses a flags word; unknown characters (including `Z`) are ignored.
    pub fn parse(word: &[u8]) -> Flags {
        word.iter().fold(Flags(0), |acc, &c| acc | Flags::letter(c))
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    /// The flags that change what a server does (authentication, close, interclacks mode, sync
    /// lock, shutdown, clock): forwarding them with `G` is reserved to the main user.
    pub const CONTROL: Flags = Flags(
        Flags::AUTH.0
            | Flags::CLOSE_ALL.0
            | Flags::AUTH_FAILED.0
            | Flags::INTERCLACKS.0
            | Flags::LOCK.0
            | Flags::AUTH_OK.0
            | Flags::SHUTDOWN.0
            | Flags::TIMESTAMP.0,
    );

    /// These flags without those of `other`.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags word as written on the wire: letters in alphabetical order, `Z` when empty.
    pub fn to_word(self) -> Vec<u8> {
        if self.is_empty() {
            return b"Z".to_vec();
        }
        LETTERS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, &l)| l)
            .collect()
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ignores_unknown_and_order() {
        let f = Flags::parse(b"UNGxyz");
        assert!(f.contains(Flags::FORWARD));
        assert!(f.contains(Flags::NO_LOGGING));
        assert!(f.contains(Flags::RETURN_TO_SENDER));
        assert!(!f.contains(Flags::AUTH));
        assert_eq!(f.without(Flags::RETURN_TO_SENDER).to_word(), b"GN");
        assert_eq!(Flags::parse(b"Z").to_word(), b"Z");
        assert_eq!(Flags::parse(b"MG").to_word(), b"GM");
        assert!(Flags::parse(b"GL").intersects(Flags::CONTROL));
        assert!(Flags::parse(b"GS").intersects(Flags::CONTROL));
        assert!(!Flags::parse(b"GNUME").intersects(Flags::CONTROL));
    }
}
