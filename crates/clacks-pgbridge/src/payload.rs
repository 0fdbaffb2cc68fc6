//! The notification payloads the `clacks_*` SQL functions send on the `clacksmessage` channel:
//! `COMMAND§§§CLACKSDELIMETER§§§name[§§§CLACKSDELIMETER§§§value]`.

use std::fmt;

/// The PostgreSQL notification channel the functions send on and the bridge listens to.
pub const CHANNEL: &str = "clacksmessage";

/// Separates the command, the name and the value in a payload (spelled as Net::Clacks spells
/// it).
pub const DELIMITER: &str = "§§§CLACKSDELIMETER§§§";

/// One Clacks command carried by a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Relay {
    /// `NOTIFY name`.
    Notify {
        /// Signal name.
        name: String,
    },
    /// `SET name=value` to listeners.
    Set {
        /// Signal name.
        name: String,
        /// Value (may hold line breaks; encoded when sent).
        value: String,
    },
    /// `STORE key=value` in the cache.
    Store {
        /// Cache key.
        name: String,
        /// Value (may hold line breaks; encoded when sent).
        value: String,
    },
    /// `SETANDSTORE name=value`.
    SetAndStore {
        /// Signal name and cache key.
        name: String,
        /// Value (may hold line breaks; encoded when sent).
        value: String,
    },
    /// `INCREMENT key[=step]`.
    Increment {
        /// Cache key.
        name: String,
        /// Step; `None` (an empty or missing value) means 1.
        step: Option<f64>,
    },
    /// `DECREMENT key[=step]`.
    Decrement {
        /// Cache key.
        name: String,
        /// Step; `None` (an empty or missing value) means 1.
        step: Option<f64>,
    },
    /// `REMOVE key`.
    Remove {
        /// Cache key.
        name: String,
    },
}

impl Relay {
    /// The command word, as in the payload.
    pub fn command(&self) -> &'static str {
        match self {
            Relay::Notify { .. } => "NOTIFY",
            Relay::Set { .. } => "SET",
            Relay::Store { .. } => "STORE",
            Relay::SetAndStore { .. } => "SETANDSTORE",
            Relay::Increment { .. } => "INCREMENT",
            Relay::Decrement { .. } => "DECREMENT",
            Relay::Remove { .. } => "REMOVE",
        }
    }

    /// The signal name or cache key.
    pub fn name(&self) -> &str {
        match self {
            Relay::Notify { name }
            | Relay::Set { name, .. }
            | Relay::Store { name, .. }
            | Relay::SetAndStore { name, .. }
            | Relay::Increment { name, .. }
            | Relay::Decrement { name, .. }
            | Relay::Remove { name } => name,
        }
    }

    /// Whether sending it twice has the same effect as once (so it may be resent when its
    /// outcome is unknown).
    pub fn is_idempotent(&self) -> bool {
        !matches!(self, Relay::Increment { .. } | Relay::Decrement { .. })
    }
}

/// Why a payload is not relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// The command word is not one of the seven.
    UnknownCommand(String),
    /// The name is missing, empty, or holds `=`, CR or LF.
    BadName(String),
    /// SET, STORE or SETANDSTORE without a value part.
    MissingValue(&'static str),
    /// NOTIFY or REMOVE with a value part.
    UnexpectedValue(&'static str),
    /// The INCREMENT or DECREMENT step is not a finite number.
    BadStep(String),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::UnknownCommand(c) => write!(f, "unknown command {c:?}"),
            PayloadError::BadName(n) => {
                write!(f, "name {n:?} is empty or holds '=', CR or LF")
            }
            PayloadError::MissingValue(c) => write!(f, "{c} without a value"),
            PayloadError::UnexpectedValue(c) => write!(f, "{c} with a value"),
            PayloadError::BadStep(s) => write!(f, "step {s:?} is not a number"),
        }
    }
}

impl std::error::Error for PayloadError {}

/// Parses a notification payload. The value is everything after the second delimiter (a
/// delimiter inside the value is kept).
pub fn parse(payload: &str) -> Result<Relay, PayloadError> {
    let mut parts = payload.splitn(3, DELIMITER);
    let command = parts.next().unwrap_or_default();
    let name = parts.next();
    let value = parts.next();
    let name = match name {
        Some(n) if !n.is_empty() && !n.contains(['=', '\r', '\n']) => n.to_string(),
        Some(n) => return Err(PayloadError::BadName(n.to_string())),
        None if is_command(command) => return Err(PayloadError::BadName(String::new())),
        None => return Err(PayloadError::UnknownCommand(command.to_string())),
    };
    let needs_value = |c: &'static str| {
        value
            .map(str::to_string)
            .ok_or(PayloadError::MissingValue(c))
    };
    let no_value = |c: &'static str| match value {
        Some(_) => Err(PayloadError::UnexpectedValue(c)),
        None => Ok(()),
    };
    let step = || match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => match s.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(PayloadError::BadStep(s.to_string())),
        },
    };
    Ok(match command {
        "NOTIFY" => {
            no_value("NOTIFY")?;
            Relay::Notify { name }
        }
        "SET" => Relay::Set {
            value: needs_value("SET")?,
            name,
        },
        "STORE" => Relay::Store {
            value: needs_value("STORE")?,
            name,
        },
        "SETANDSTORE" => Relay::SetAndStore {
            value: needs_value("SETANDSTORE")?,
            name,
        },
        "INCREMENT" => Relay::Increment {
            step: step()?,
            name,
        },
        "DECREMENT" => Relay::Decrement {
            step: step()?,
            name,
        },
        "REMOVE" => {
            no_value("REMOVE")?;
            Relay::Remove { name }
        }
        other => return Err(PayloadError::UnknownCommand(other.to_string())),
    })
}

fn is_command(word: &str) -> bool {
    matches!(
        word,
        "NOTIFY" | "SET" | "STORE" | "SETANDSTORE" | "INCREMENT" | "DECREMENT" | "REMOVE"
    )
}

/// A `STORE k=v` and an `INCREMENT k`: one command that may be sent twice and one that may not.
#[cfg(test)]
pub(crate) fn store_and_increment() -> (Relay, Relay) {
    let store = Relay::Store {
        name: "k".into(),
        value: "v".into(),
    };
    let incr = Relay::Increment {
        name: "k".into(),
        step: None,
    };
    (store, incr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> String {
        parts.join(DELIMITER)
    }

    #[test]
    fn every_command() {
        let n = || "k".to_string();
        let table: Vec<(String, Relay)> = vec![
            (p(&["NOTIFY", "k"]), Relay::Notify { name: n() }),
            (
                p(&["SET", "k", "a=b"]),
                Relay::Set {
                    name: n(),
                    value: "a=b".into(),
                },
            ),
            (
                p(&["STORE", "k", "x\ny"]),
                Relay::Store {
                    name: n(),
                    value: "x\ny".into(),
                },
            ),
            (
                p(&["SETANDSTORE", "k", ""]),
                Relay::SetAndStore {
                    name: n(),
                    value: String::new(),
                },
            ),
            (
                p(&["INCREMENT", "k"]),
                Relay::Increment {
                    name: n(),
                    step: None,
                },
            ),
            (
                p(&["INCREMENT", "k", ""]),
                Relay::Increment {
                    name: n(),
                    step: None,
                },
            ),
            (
                p(&["DECREMENT", "k", "2.5"]),
                Relay::Decrement {
                    name: n(),
                    step: Some(2.5),
                },
            ),
            (p(&["REMOVE", "k"]), Relay::Remove { name: n() }),
            (
                p(&["SET", "k", "a", "b"]),
                Relay::Set {
                    name: n(),
                    value: format!("a{DELIMITER}b"),
                },
            ),
        ];
        for (payload, want) in table {
            assert_eq!(parse(&payload), Ok(want.clone()), "{payload}");
            assert_eq!(parse(&payload).unwrap().command(), want.command());
        }
    }

    #[test]
    fn refused() {
        let table: Vec<(String, PayloadError)> = vec![
            (String::new(), PayloadError::UnknownCommand(String::new())),
            ("hello".into(), PayloadError::UnknownCommand("hello".into())),
            (
                p(&["FROB", "k"]),
                PayloadError::UnknownCommand("FROB".into()),
            ),
            (
                p(&["notify", "k"]),
                PayloadError::UnknownCommand("notify".into()),
            ),
            ("NOTIFY".into(), PayloadError::BadName(String::new())),
            (p(&["NOTIFY", ""]), PayloadError::BadName(String::new())),
            (
                p(&["STORE", "a=b", "v"]),
                PayloadError::BadName("a=b".into()),
            ),
            (
                p(&["SET", "a\nb", "v"]),
                PayloadError::BadName("a\nb".into()),
            ),
            (p(&["SET", "k"]), PayloadError::MissingValue("SET")),
            (
                p(&["REMOVE", "k", "v"]),
                PayloadError::UnexpectedValue("REMOVE"),
            ),
            (
                p(&["INCREMENT", "k", "two"]),
                PayloadError::BadStep("two".into()),
            ),
            (
                p(&["DECREMENT", "k", "inf"]),
                PayloadError::BadStep("inf".into()),
            ),
        ];
        for (payload, want) in table {
            assert_eq!(parse(&payload), Err(want), "{payload:?}");
        }
    }
}
