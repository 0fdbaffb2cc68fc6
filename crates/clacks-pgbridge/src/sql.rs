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

/// One `CREATE OR REPLACE FUNCTION` statement per function. A NULL argument is left out of
/// the payload (`concat_ws`), so a NULL value makes a payload the bridge rejects and logs
/// instead of an empty one, and a NULL step increments by 1.
pub fn statements() -> Vec<String> {
    FUNCTIONS
        .iter()
        .map(|&(function, command, with_value)| {
            let (params, args) = if with_value {
                (
                    "clacksname text, clacksvalue text",
                    "clacksname, clacksvalue",
                )
            } else {
                ("clacksname text", "clacksname")
            };
            format!(
                "CREATE OR REPLACE FUNCTION {function}({params}) RETURNS void\n\
                 LANGUAGE sql VOLATILE AS $clacks$\n    \
                 SELECT pg_notify('{CHANNEL}', concat_ws('{DELIMITER}', '{command}', {args}));\n\
                 $clacks$;"
            )
        })
        .collect()
}

/// The whole script, as `--print-functions` prints it.
pub fn script() -> String {
    let mut out = String::from(
        "-- Functions for clacks-pgbridge: each sends one Clacks command on the\n\
         -- 'clacksmessage' channel when its transaction commits.\n\n",
    );
    for stmt in statements() {
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
        let stmts = statements();
        assert_eq!(stmts.len(), 7);
        assert!(stmts[1].starts_with(
            "CREATE OR REPLACE FUNCTION clacks_set(clacksname text, clacksvalue text) RETURNS void"
        ));
        assert!(stmts[6].contains("'REMOVE', clacksname)"), "{}", stmts[6]);
        assert!(script().contains("pg_notify('clacksmessage', concat_ws('§§§CLACKSDELIMETER§§§'"));
    }
}
