//! `clacks shell`: an interactive prompt with history and command completion that prints
//! incoming signals as they arrive.

use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use clacks_client::Client;

use crate::{connect, execute, format_event, Command, Conn, Outcome};

/// One shell line, parsed with the same grammar as the command line.
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

fn command_names() -> Vec<String> {
    let mut names: Vec<String> = Line::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "shell")
        .collect();
    names.extend(["help", "quit"].map(String::from));
    names
}

struct ShellHelper {
    names: Vec<String>,
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        if before.contains(' ') {
            return Ok((pos, Vec::new()));
        }
        let found = self
            .names
            .iter()
            .filter(|n| n.starts_with(before))
            .cloned()
            .collect();
        Ok((0, found))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// Splits a shell line into words as a POSIX shell would (quotes and backslashes); after
/// `set`, `setandstore` and `store` NAME, the remaining words are the value. A line in upper
/// case is sent as a raw protocol line. `None` for unbalanced quotes.
fn words(line: &str) -> Option<Vec<String>> {
    let first = line.split_whitespace().next().unwrap_or_default();
    if first.chars().any(|c| c.is_ascii_uppercase()) && first == first.to_ascii_uppercase() {
        return Some(vec!["raw".to_string(), line.to_string()]);
    }
    let mut words = shlex::split(line)?;
    if matches!(first, "set" | "setandstore" | "store") && words.len() > 3 {
        let value = words.split_off(2).join(" ");
        words.push(value);
    }
    Some(words)
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".clacks_history"))
}

pub(crate) fn run(runtime: &tokio::runtime::Runtime, conn: &Conn) -> anyhow::Result<Outcome> {
    let (client, mut events) = runtime.block_on(connect(conn))?;
    let mut editor: Editor<ShellHelper, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(ShellHelper {
        names: command_names(),
    }));
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    // Events are printed over the prompt line (cleared first on a terminal); rustyline's
    // external printer is not used: with it, pasted lines ran one line late.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    runtime.spawn(async move {
        while let Some(event) = events.next().await {
            let line = match &event {
                clacks_client::Event::ErrorMessage { message, command } => {
                    format!("error: {message} {}", command.clone().unwrap_or_default())
                }
                clacks_client::Event::Disconnected { reason } => format!("disconnected ({reason})"),
                clacks_client::Event::Reconnected => "reconnected".to_string(),
                other => match format_event(other, false) {
                    Some(line) => line,
                    None => continue,
                },
            };
            if terminal {
                print!("\r\x1b[2K{line}\n");
            } else {
                println!("{line}");
            }
        }
    });
    println!(
        "connected to {}; type help for commands, quit to leave",
        client.server_info().unwrap_or_default()
    );
    loop {
        let input = match editor.readline("clacks> ") {
            Ok(input) => input,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        // A pasted block arrives as one input with line breaks: its lines run in order.
        let mut quit = false;
        for line in input.split(['\n', '\r']).map(str::trim) {
            if line.is_empty() {
                continue;
            }
            let _ = editor.add_history_entry(line);
            if !run_line(runtime, &client, line) {
                quit = true;
                break;
            }
        }
        if quit {
            break;
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    runtime.block_on(client.disconnect())?;
    Ok(Outcome::Done)
}

/// Runs one shell line; `false` for `quit`.
fn run_line(runtime: &tokio::runtime::Runtime, client: &Client, line: &str) -> bool {
    match line {
        "quit" | "exit" => return false,
        "help" => {
            let _ = Line::command()
                .override_usage("COMMAND [ARGS]")
                .print_help();
            println!("\nA line in capitals (like RETRIEVE key) is sent as it is.");
            return true;
        }
        _ => {}
    }
    let Some(words) = words(line) else {
        println!("error: unbalanced quotes");
        return true;
    };
    let parsed = match Line::try_parse_from(words) {
        Ok(parsed) => parsed,
        Err(e) => {
            println!("{}", e.render().to_string().trim_end());
            return true;
        }
    };
    if let Command::Qsend { value, .. } = &parsed.command {
        if value.as_deref().is_none_or(|v| v == "-") {
            println!("error: qsend needs a VALUE in the shell");
            return true;
        }
    }
    let mut out = std::io::stdout();
    match runtime.block_on(execute(client, &parsed.command, &mut out)) {
        Ok(Outcome::Done) => {}
        Ok(Outcome::NotFound) => println!("(not found)"),
        Ok(Outcome::Exit(code)) => println!("(exit status {code})"),
        Err(e) => println!("error: {e:#}"),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_parse_like_the_command_line() {
        let words = |line| words(line).unwrap();
        assert_eq!(
            words("set chan hello world"),
            vec!["set", "chan", "hello world"]
        );
        assert_eq!(words("RETRIEVE a b"), vec!["raw", "RETRIEVE a b"]);
        assert_eq!(words("get  k"), vec!["get", "k"]);
        assert_eq!(words("get 'a key'"), vec!["get", "a key"]);
        assert_eq!(
            words(r#"store "my key" "two  spaces""#),
            vec!["store", "my key", "two  spaces"]
        );
        assert_eq!(super::words("get 'open"), None);
        let parsed = Line::try_parse_from(words("store k a = b")).unwrap();
        assert!(
            matches!(parsed.command, Command::Store { ref key, value: Some(ref value) } if key == "k" && value == "a = b")
        );
        assert!(command_names().contains(&"listen".to_string()));
    }
}
