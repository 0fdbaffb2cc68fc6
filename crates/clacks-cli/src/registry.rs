//! The service-registry subcommands: `register`, `resolve` and `services`.

use std::io::Write;

use anyhow::Context as _;
use clacks_client::{Client, Instance};
use serde_json::Value;

use crate::Outcome;

/// `k=v` of `--meta`.
pub(crate) fn meta_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("KEY=VALUE".into()),
    }
}

/// `register`: registers, runs `command` (standard streams inherited) and withdraws the
/// instance when it ends; the outcome is its exit status (128 + the signal that killed it).
/// Ctrl-C ends the command. A killed `clacks` loses its connection, which takes the instance.
pub(crate) async fn register(
    client: &Client,
    service: &str,
    endpoint: &str,
    meta: &[(String, String)],
    command: &[String],
) -> anyhow::Result<Outcome> {
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let registration = client.register(service, endpoint, &meta).await?;
    let id = registration.id().map(|i| i.to_string()).unwrap_or_default();
    eprintln!("registered {service} at {endpoint} (instance {id})");
    let (program, args) = command.split_first().context("no command")?;
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = registration.unregister().await;
            return Err(e).with_context(|| format!("cannot run {program}"));
        }
    };
    let status = tokio::select! {
        status = child.wait() => status,
        _ = tokio::signal::ctrl_c() => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
    .with_context(|| format!("running {program}"));
    if let Err(e) = registration.unregister().await {
        eprintln!("clacks: withdrawing the instance: {e}");
    }
    let status = status?;
    let code = match status.code() {
        Some(code) => code,
        None => {
            use std::os::unix::process::ExitStatusExt as _;
            128 + status.signal().unwrap_or(0)
        }
    };
    Ok(Outcome::Exit(u8::try_from(code & 0xff).unwrap_or(1)))
}

fn instance_json(i: &Instance) -> Value {
    let meta: serde_json::Map<String, Value> = i
        .meta
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    serde_json::json!({
        "id": i.id,
        "endpoint": i.endpoint,
        "node": i.node,
        "since": i.since,
        "status": i.status,
        "meta": meta,
    })
}

/// `resolve`: a table of the instances (or a JSON array of objects); `NotFound` when there
/// is none.
pub(crate) async fn resolve(
    client: &Client,
    service: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let instances = client.resolve(service).await?;
    if json {
        let all: Vec<Value> = instances.iter().map(instance_json).collect();
        writeln!(out, "{}", Value::Array(all))?;
    } else if !instances.is_empty() {
        let rows: Vec<Vec<String>> = instances
            .iter()
            .map(|i| {
                let meta: Vec<String> = i.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
                vec![
                    i.id.to_string(),
                    i.endpoint.clone(),
                    i.node.clone(),
                    i.since.to_string(),
                    i.status.clone(),
                    meta.join(";"),
                ]
            })
            .collect();
        let header = ["ID", "ENDPOINT", "NODE", "SINCE", "STATUS", "META"];
        crate::table::print(&header, &rows, out)?;
    }
    Ok(if instances.is_empty() {
        Outcome::NotFound
    } else {
        Outcome::Done
    })
}

/// `services`: a table of every service (or a JSON array of objects).
pub(crate) async fn services(
    client: &Client,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let services = client.services().await?;
    if json {
        let all: Vec<Value> = services
            .iter()
            .map(|(name, instances, draining)| {
                serde_json::json!({"service": name, "instances": instances, "draining": draining})
            })
            .collect();
        writeln!(out, "{}", Value::Array(all))?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = services
        .into_iter()
        .map(|(name, instances, draining)| vec![name, instances.to_string(), draining.to_string()])
        .collect();
    crate::table::print(&["SERVICE", "INSTANCES", "DRAINING"], &rows, out)?;
    Ok(())
}
