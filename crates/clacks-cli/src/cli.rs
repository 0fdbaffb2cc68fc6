//! The command line: connection flags, subcommands and their arguments.

use clacks_client::ConnectArgs;
use clap::{Args, Parser, Subcommand};

/// Exit statuses, shown by `--help`.
pub(crate) const EXIT_STATUSES: &str =
    "Exit status: 0 done, 1 not found (get, qrecv, resolve), 2 usage \
error, 3 connection failed, timed out or outcome unknown, 4 refused by the server (permission, \
login, limits), 5 the worker answered the request with an error; register: its command's.";

/// Command-line client for Clacks servers.
#[derive(Parser, Debug)]
#[command(name = "clacks", version, about, after_help = EXIT_STATUSES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where and as whom to connect (the flags shared by every Clacks program) and how long to
/// wait; flags may stand before or after the subcommand.
#[derive(Args, Debug, Clone)]
pub(crate) struct Conn {
    #[command(flatten)]
    pub(crate) clacks: ConnectArgs,
    /// Seconds to wait for connecting and for each answer (over 0; default 10). For qrecv
    /// and request, see there.
    #[arg(long, global = true, value_parser = seconds)]
    pub(crate) timeout: Option<f64>,
}

#[derive(Subcommand, Debug, Clone)]
pub(crate) enum Command {
    /// Print the man page or shell completions of clacks (no server needed).
    Generate {
        #[arg(value_enum)]
        what: clacks_client::Generate,
    },
    /// NOTIFY listeners of NAME.
    Notify { name: String },
    /// SET NAME=VALUE to its listeners (VALUE omitted or `-`: read from standard input).
    Set { name: String, value: Option<String> },
    /// SET to listeners and STORE (VALUE omitted or `-`: read from standard input).
    Setandstore { name: String, value: Option<String> },
    /// STORE KEY=VALUE in the cache (VALUE omitted or `-`: read from standard input; a value
    /// with line breaks is stored in the ClacksCache text encoding).
    Store { key: String, value: Option<String> },
    /// Print the value of KEY, decoding ClacksCache encodings (exit status 1 when not found).
    Get {
        key: String,
        /// Print the value as stored.
        #[arg(long)]
        raw: bool,
    },
    /// REMOVE KEY.
    Remove { key: String },
    /// INCREMENT KEY by N (default 1).
    Incr { key: String, n: Option<f64> },
    /// DECREMENT KEY by N (default 1).
    Decr { key: String, n: Option<f64> },
    /// List the keys (removed ones included, as the server lists them).
    Keys {
        /// A JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Empty the whole cache.
    ClearCache,
    /// List the server's connections.
    Clients {
        /// A JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Disconnect the client with this CID (see `clients`).
    Kick { cid: String },
    /// Print every signal of the NAMEs as it arrives.
    Listen {
        #[arg(required = true)]
        names: Vec<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Exit after this many signals.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Print every command the server sees (DEBUG lines).
    Monitor {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the server has processed everything sent before.
    Flush,
    /// Print the server's counters (clacksd only).
    Stats {
        /// A JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Send one raw protocol line and print the answer.
    Raw {
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        line: Vec<String>,
    },
    /// Interactive prompt with history and completion; shows signals as they arrive.
    Shell,
    /// QSEND VALUE to a work queue (VALUE omitted or `-`: one message per line of standard
    /// input).
    Qsend {
        queue: String,
        value: Option<String>,
    },
    /// Take messages from a work queue and print their values, one per line (exit status 1
    /// when none came).
    Qrecv {
        queue: String,
        /// Seconds to wait for each message (0: take one only if one is ready; default: wait
        /// until one comes). Connecting and answers keep 10 s.
        #[arg(long, value_parser = seconds)]
        timeout: Option<f64>,
        /// Take each message under a lease of this many seconds, and acknowledge it once it
        /// is printed (default: no lease: a message is gone once taken).
        #[arg(long, value_parser = positive_seconds)]
        lease: Option<f64>,
        /// Take this many messages, then exit.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// One JSON object per message: queue, id, value.
        #[arg(long)]
        json: bool,
    },
    /// Print the figures of a work queue.
    Qstat {
        queue: String,
        /// A JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List every work queue with its figures.
    Queues {
        /// A JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Send VALUE as a request to the workers of a queue and print their reply (exit status
    /// 3 when none came in time).
    Request {
        queue: String,
        value: String,
        /// Seconds to wait for the reply, and for connecting (over 0; default 10).
        #[arg(long, value_parser = positive_seconds)]
        timeout: Option<f64>,
        /// VALUE is JSON, and the reply is printed as JSON (else VALUE is sent as a JSON
        /// string, and a string reply printed as it is).
        #[arg(long)]
        json: bool,
    },
    /// Run COMMAND once for each message of a queue (its exit status 0 acknowledges it).
    ///
    /// The message and a line end are COMMAND's standard input; exit status 0 acknowledges
    /// the message (and prints COMMAND's output), any other gives it back. For a request (see
    /// `request`) the input is the request's body and the reply is COMMAND's output, one
    /// final line end dropped. A request past its deadline is dropped unanswered.
    Work {
        queue: String,
        /// Seconds each message is leased for while COMMAND runs; when it runs out, the
        /// message goes back to the queue.
        #[arg(long, default_value_t = 60.0, value_parser = positive_seconds)]
        lease: f64,
        /// Stop after this many messages.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// The command and its arguments, after `--`.
        #[arg(required = true, last = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// Register an instance of SERVICE at ENDPOINT while COMMAND runs, then withdraw it and
    /// exit with COMMAND's status.
    ///
    /// ENDPOINT: `tcp:HOST:PORT`, `tls:HOST:PORT`, `unix:PATH`, `queue:NAME` or a URL. The
    /// instance goes with the connection: if `clacks` is killed, the server drops it; after a
    /// lost connection it is registered again.
    Register {
        service: String,
        endpoint: String,
        /// Metadata KEY=VALUE (repeatable); `status=draining` asks for no new work.
        #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = crate::registry::meta_pair)]
        meta: Vec<(String, String)>,
        /// The command and its arguments, after `--`.
        #[arg(required = true, last = true, num_args = 1..)]
        command: Vec<String>,
    },
    /// List the instances of SERVICE (exit status 1 when there is none).
    Resolve {
        service: String,
        /// A JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// List every registered service with its instances.
    Services {
        /// A JSON array of objects.
        #[arg(long)]
        json: bool,
    },
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 86_400.0 => Ok(t),
        _ => Err("seconds, over 0 and at most 86400".into()),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if (0.0..=86_400.0).contains(&t) => Ok(t),
        _ => Err("seconds, from 0 to 86400".into()),
    }
}
