//! Users, their permissions, and checking a login token.

use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::Config;

/// What a user may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Perms {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) manage: bool,
    pub(crate) interclacks: bool,
}

/// One permission a command needs (see [`crate::cmd::permission`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Read,
    Write,
    Manage,
    /// Only the main user: interclacks links and commands that act on the whole tree.
    Interclacks,
}

impl Perms {
    pub(crate) fn grants(&self, need: Need) -> bool {
        match need {
            Need::Read => self.read,
            Need::Write => self.write,
            Need::Manage => self.manage,
            Need::Interclacks => self.interclacks,
        }
    }
}

struct Credential {
    /// `base64(user):base64(password)`, the form clients send.
    token: Vec<u8>,
    /// `base64(user:password)`, the form the protocol text shows.
    alt_token: Vec<u8>,
    perms: Perms,
}

impl Credential {
    fn new(user: &str, password: &str, perms: Perms) -> Credential {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        Credential {
            token: format!("{}:{}", b64(user), b64(password)).into_bytes(),
            alt_token: b64(&format!("{user}:{password}")).into_bytes(),
            perms,
        }
    }
}

/// Every user of the config: the main user first (all rights, interclacks included).
pub(crate) struct Credentials(Vec<Credential>);

impl Credentials {
    pub(crate) fn from_config(config: &Config) -> Credentials {
        let main = Perms {
            read: true,
            write: true,
            manage: true,
            interclacks: true,
        };
        let mut all = vec![Credential::new(&config.username, &config.password, main)];
        all.extend(config.users.iter().map(|u| {
            let perms = Perms {
                read: u.read,
                write: u.write,
                manage: u.manage,
                interclacks: false,
            };
            Credential::new(&u.username, &u.password, perms)
        }));
        Credentials(all)
    }

    /// The main user's login token, sent to interclacks peers.
    pub(crate) fn main_token(&self) -> &[u8] {
        &self.0[0].token
    }

    /// Checks a login token against every user, in constant time per candidate.
    pub(crate) fn authenticate(&self, token: &[u8]) -> Option<Perms> {
        let mut found = None;
        for c in &self.0 {
            let hit = c.token.ct_eq(token) | c.alt_token.ct_eq(token);
            if bool::from(hit) && found.is_none() {
                found = Some(c.perms);
            }
        }
        found
    }
}
