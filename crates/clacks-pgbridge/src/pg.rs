//! The PostgreSQL connection settings: a URL or `key=value` string, completed from the libpq
//! environment variables (which tokio-postgres does not read by itself).

use std::path::Path;

use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// Settings from `url` (a `postgresql://` URL or a libpq `key=value` string), with whatever it
/// leaves out taken from `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` and `PGPASSWORD` as `var`
/// returns them. With no host at all, the Unix socket directory `/var/run/postgresql` (where
/// Debian's libpq looks) if it exists, else `localhost`.
pub fn config(
    url: Option<&str>,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Config, tokio_postgres::Error> {
    let mut cfg = match url {
        Some(url) => url.parse::<Config>()?,
        None => Config::new(),
    };
    if cfg.get_hosts().is_empty() {
        match var("PGHOST") {
            Some(hosts) => {
                for host in hosts.split(',').filter(|h| !h.is_empty()) {
                    cfg.host(host);
                }
            }
            None if Path::new("/var/run/postgresql").is_dir() => {
                cfg.host("/var/run/postgresql");
            }
            None => {
                cfg.host("localhost");
            }
        }
    }
    if cfg.get_ports().is_empty() {
        if let Some(ports) = var("PGPORT") {
            for port in ports.split(',').filter(|p| !p.is_empty()) {
                match port.trim().parse::<u16>() {
                    Ok(p) => {
                        cfg.port(p);
                    }
                    Err(_) => {
                        // Let the parser word the error.
                        return format!("port={port}").parse::<Config>();
                    }
                }
            }
        }
    }
    if cfg.get_user().is_none() {
        if let Some(user) = var("PGUSER") {
            cfg.user(&user);
        }
    }
    if cfg.get_dbname().is_none() {
        if let Some(db) = var("PGDATABASE") {
            cfg.dbname(&db);
        }
    }
    if cfg.get_password().is_none() {
        if let Some(pw) = var("PGPASSWORD") {
            cfg.password(pw);
        }
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("clacks-pgbridge");
    }
    Ok(cfg)
}

/// Where `cfg` connects, for log lines (never the password).
pub fn describe(cfg: &Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = cfg.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host={} port={} user={} dbname={}",
        hosts.join(","),
        if ports.is_empty() {
            "5432".to_string()
        } else {
            ports.join(",")
        },
        cfg.get_user().unwrap_or("(default)"),
        cfg.get_dbname().unwrap_or("(default)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_fills_the_gaps() {
        let cfg = config(
            None,
            env(&[
                ("PGHOST", "/run/pg"),
                ("PGPORT", "5433"),
                ("PGUSER", "app"),
                ("PGDATABASE", "shop"),
                ("PGPASSWORD", "hunter2"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.get_hosts(), &[Host::Unix("/run/pg".into())]);
        assert_eq!(cfg.get_ports(), &[5433]);
        assert_eq!(cfg.get_user(), Some("app"));
        assert_eq!(cfg.get_dbname(), Some("shop"));
        assert_eq!(cfg.get_password(), Some(&b"hunter2"[..]));
        let shown = describe(&cfg);
        assert!(
            shown.contains("/run/pg") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn the_url_wins() {
        let cfg = config(
            Some("postgresql://u@db.example:6000/main"),
            env(&[("PGHOST", "other"), ("PGUSER", "x"), ("PGDATABASE", "y")]),
        )
        .unwrap();
        assert_eq!(cfg.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(cfg.get_ports(), &[6000]);
        assert_eq!(cfg.get_user(), Some("u"));
        assert_eq!(cfg.get_dbname(), Some("main"));
        let cfg = config(Some("host=/tmp dbname=d"), env(&[("PGUSER", "x")])).unwrap();
        assert_eq!(cfg.get_user(), Some("x"));
        assert!(config(None, env(&[("PGHOST", "h"), ("PGPORT", "nope")])).is_err());
        assert!(config(Some("postgresql://h:notaport/"), env(&[])).is_err());
    }
}
