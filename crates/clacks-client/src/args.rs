//! The connection flags every Clacks command-line program takes (feature `clap`): flatten
//! [`ConnectArgs`] into a clap parser and call [`ConnectArgs::options`].
//!
//! ```
//! use clap::Parser;
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     conn: clacks_client::ConnectArgs,
//! }
//! let cli = Cli::parse_from(["prog", "--socket", "/run/clacks.sock", "--user", "u", "--password", "p"]);
//! let opts = cli.conn.options().unwrap();
//! assert!(matches!(opts.target, clacks_client::Target::Unix(_)));
//! ```

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::{ClientError, ConnectOptions};

/// Where and as whom to connect. Each flag stands for the `CLACKS_*` variable of
/// [`ConnectOptions::from_env`] (and is filled from it); what neither gives comes from the
/// zero-config server's data directory. The flags are global: with subcommands they may stand
/// before or after the subcommand.
#[derive(Args, Clone)]
pub struct ConnectArgs {
    /// Clacks server URL: `clackss://USER:PASSWORD@HOST[:PORT]` or `clacks+unix:///PATH`
    /// (the other connection flags are then ignored).
    #[arg(long, global = true, env = "CLACKS_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// Clacks server host for TLS (default: the Unix socket of the data directory).
    #[arg(long, global = true, env = "CLACKS_HOST")]
    pub host: Option<String>,
    /// Clacks server TLS port.
    #[arg(long, global = true, env = "CLACKS_PORT", default_value_t = 49888)]
    pub port: u16,
    /// Clacks Unix socket path.
    #[arg(long, global = true, env = "CLACKS_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Clacks user name (default: from the data directory's credentials file).
    #[arg(long, global = true, env = "CLACKS_USER")]
    pub user: Option<String>,
    /// Clacks password (default: from the data directory's credentials file).
    #[arg(long, global = true, env = "CLACKS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Data directory of a zero-config clacksd.
    #[arg(
        long,
        global = true,
        env = "CLACKS_DATA_DIR",
        default_value = "./clacks-data"
    )]
    pub data_dir: PathBuf,
    /// Verify the Clacks server's TLS certificate against this CA file (PEM).
    #[arg(long, global = true, env = "CLACKS_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept only this TLS certificate (PEM).
    #[arg(long, global = true, env = "CLACKS_PIN")]
    pub pin: Option<PathBuf>,
}

/// Shows every flag but the password and the URL (which may hold one).
impl std::fmt::Debug for ConnectArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("ConnectArgs")
            .field("url", &hidden(&self.url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("password", &hidden(&self.password))
            .field("data_dir", &self.data_dir)
            .field("ca_file", &self.ca_file)
            .field("pin", &self.pin)
            .finish()
    }
}

impl ConnectArgs {
    /// The options these flags describe, resolved exactly as [`ConnectOptions::from_env`]
    /// resolves the variables.
    pub fn options(&self) -> Result<ConnectOptions, ClientError> {
        let path = |p: Option<&PathBuf>| p.map(|p| p.display().to_string());
        ConnectOptions::from_vars(|name| match name {
            "CLACKS_URL" => self.url.clone(),
            "CLACKS_SOCKET" => path(self.socket.as_ref()),
            "CLACKS_HOST" => self.host.clone(),
            "CLACKS_PORT" => Some(self.port.to_string()),
            "CLACKS_USER" => self.user.clone(),
            "CLACKS_PASSWORD" => self.password.clone(),
            "CLACKS_DATA_DIR" => path(Some(&self.data_dir)),
            "CLACKS_CA_FILE" => path(self.ca_file.as_ref()),
            "CLACKS_PIN" => path(self.pin.as_ref()),
            _ => None,
        })
    }
}

/// What [`generate`] writes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// The man page (roff).
    Man,
    /// bash completions.
    Bash,
    /// zsh completions.
    Zsh,
    /// fish completions.
    Fish,
    /// elvish completions.
    Elvish,
}

/// Writes the man page or the shell completions of the program `cmd` describes to `out`.
pub fn generate(
    mut cmd: clap::Command,
    what: Generate,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    use clap_complete::Shell;
    // Made in memory: the completion generator panics when its output fails (a closed pipe).
    let mut text = Vec::new();
    let shell = match what {
        Generate::Man => {
            clap_mangen::Man::new(cmd.clone()).render(&mut text)?;
            None
        }
        Generate::Bash => Some(Shell::Bash),
        Generate::Zsh => Some(Shell::Zsh),
        Generate::Fish => Some(Shell::Fish),
        Generate::Elvish => Some(Shell::Elvish),
    };
    if let Some(shell) = shell {
        let name = cmd.get_name().to_string();
        clap_complete::generate(shell, &mut cmd, name, &mut text);
    }
    out.write_all(&text)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ConnectArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        conn: ConnectArgs,
    }

    #[test]
    fn debug_hides_the_password_and_the_url() {
        let cli = Cli::parse_from([
            "prog",
            "--user",
            "alice",
            "--password",
            "hunter2",
            "--url",
            "clackss://alice:hunter3@h:1",
        ]);
        let shown = format!("{:?}", cli.conn);
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter"), "{shown}");
    }
}
