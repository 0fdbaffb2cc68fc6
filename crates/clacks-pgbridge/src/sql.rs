//! The SQL functions that send Clacks commands from PostgreSQL: the same names, signatures,
//! channel and payloads as Net::Clacks's PostgreSQL bridge installs, so databases set up for
//! either bridge work with both.

use crate::payload::{CHANNEL, DELIMITER};

/// Each function: its name, the command it sends, and whether it takes a value.
pub const FUNCTIONS: [(&str, &str, bool); 7] = [
    ("clacks_notify", "NOTIFY", false),
    ("clacks_set", "SET", true),
    ("clacks_store", "STORE", true),
    ("clacks_setandstore", "SETANDSTORE", true),
    ("clacks_increment", "INCREMENT", true),
    ("clacks_decrement", "DECREMENT", true),
    ("clacks_remove", "REMOVE", false),
];

/// The table the functions of the durable mode ([`Mode::Outbox`]) write to.
pub const OUTBOX_TABLE: &str = "clacks_outbox";

/// The channel the functions of the durable mode notify (with an empty payload) to wake the
/// bridge.
pub const WAKE_CHANNEL: &str = "clacksoutbox";

/// How the functions hand their commands to the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `pg_notify` on `clacksmessage` with the command as payload, as Net::Clacks's bridge
    /// does: delivered at commit, lost while no bridge listens.
    Notify,
    /// A row in `clacks_outbox`, in the caller's transaction, and an empty `pg_notify` on
    /// `clacksoutbox`: kept until a bridge has relayed it.
    Outbox,
}

/// The statements that install the functions: for [`Mode::Outbox`] first the table (if it
/// does not exist), then one `CREATE OR REPLACE FUNCTION` per function. A NULL argument is left
/// out of the payload (`concat_ws`), so a NULL value makes a payload the bridge rejects and
/// logs instead of an empty one, and a NULL step increments by 1.
pub fn statements(mode: Mode) -> Vec<String> {
    let mut out = Vec::new();
    if mode == Mode::Outbox {
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (\n    \
                 id bigserial PRIMARY KEY,\n    \
                 payload text NOT NULL,\n    \
                 queued timestamptz NOT NULL DEFAULT clock_timestamp()\n\
             );"
        ));
    }
    out.extend(FUNCTIONS.iter().map(|&(function, command, with_value)| {
        let (params, args) = if with_value {
            (
                "clacksname text, clacksvalue text",
                "clacksname, clacksvalue",
            )
        } else {
            ("clacksname text", "clacksname")
        };
        let payload = format!("concat_ws('{DELIMITER}', '{command}', {args})");
        let body = match mode {
            Mode::Notify => format!("    SELECT pg_notify('{CHANNEL}', {payload});\n"),
            Mode::Outbox => format!(
                "    INSERT INTO {OUTBOX_TABLE} (payload) VALUES ({payload});\n    \
                 SELECT pg_notify('{WAKE_CHANNEL}', '');\n"
            ),
        };
        // The outbox functions find their table through the search path they were created
        // with, whatever the caller's is.
        let pinned = match mode {
            Mode::Notify => "",
            Mode::Outbox => " SET search_path FROM CURRENT",
        };
        format!(
            "CREATE OR REPLACE FUNCTION {function}({params}) RETURNS void\n\
             LANGUAGE sql VOLATILE{pinned} AS $clacks$\n{body}$clacks$;"
        )
    }));
    out
}

/// The whole script, as `--print-functions` prints it.
pub fn script(mode: Mode) -> String {
    let mut out = String::from(match mode {
        Mode::Notify => {
            "-- Functions for clacks-pgbridge: each sends one Clacks command on the\n\
             -- 'clacksmessage' channel when its transaction commits.\n\n"
        }
        Mode::Outbox => {
            "-- Functions for clacks-pgbridge --outbox: each adds one Clacks command to the\n\
             -- clacks_outbox table in the caller's transaction; the bridge relays and deletes it.\n\
             -- Callers need INSERT on clacks_outbox and USAGE on clacks_outbox_id_seq.\n\n"
        }
    });
    for stmt in statements(mode) {
        out.push_str(&stmt);
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_per_function() {
        let stmts = statements(Mode::Notify);
        assert_eq!(stmts.len(), 7);
        assert!(stmts[1].starts_with(
            "CREATE OR REPLACE FUNCTION clacks_set(clacksname text, clacksvalue text) RETURNS void"
        ));
        assert!(stmts[6].contains("'REMOVE', clacksname)"), "{}", stmts[6]);
        assert!(script(Mode::Notify)
            .contains("pg_notify('clacksmessage', concat_ws('§§§CLACKSDELIMETER§§§'"));
    }

    #[test]
    fn the_outbox_table_comes_first() {
        let stmts = statements(Mode::Outbox);
        assert_eq!(stmts.len(), 8);
        assert!(stmts[0].starts_with("CREATE TABLE IF NOT EXISTS clacks_outbox ("));
        assert!(stmts[2].contains(
            "INSERT INTO clacks_outbox (payload) VALUES (concat_ws('§§§CLACKSDELIMETER§§§', 'SET', clacksname, clacksvalue));"
        ), "{}", stmts[2]);
        assert!(stmts[2].contains("SET search_path FROM CURRENT"));
        assert!(!script(Mode::Outbox).contains("'clacksmessage'"));
    }
}
