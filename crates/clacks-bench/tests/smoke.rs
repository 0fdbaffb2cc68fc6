//! A tiny run of every workload against an in-process clacksd: the tool works and the counts add
//! up. Nothing is timed.

use std::process::Command;

use clacks_server::testing::{TestServer, ADMIN};

fn bench(server: &TestServer, json_dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_clacks-bench"))
        .env_clear()
        .arg("--target")
        .arg(format!("unix:{}", server.socket.display()))
        .args([
            "--user",
            ADMIN.0,
            "--password",
            ADMIN.1,
            "--quiet",
            "--label",
            "smoke",
        ])
        .arg("--json-dir")
        .arg(json_dir)
        .arg("--server-pid")
        .arg(std::process::id().to_string())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(json_dir.join("smoke.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_workload_runs_and_counts_add_up() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start());
    let dir = tempfile::tempdir().unwrap();

    let r = bench(
        &server,
        dir.path(),
        &["fanout", "--listeners", "5", "--messages", "300"],
    );
    assert_eq!(r["workload"], "fanout");
    assert_eq!(r["results"]["messages_published"], 300);
    assert_eq!(r["results"]["messages_delivered"], 1500);
    assert_eq!(r["results"]["lost"], 0);
    assert_eq!(r["results"]["latency"]["samples"], 1500);
    assert!(r["server_version"]
        .as_str()
        .unwrap()
        .starts_with("clacksd "));

    let r = bench(
        &server,
        dir.path(),
        &[
            "cache",
            "--connections",
            "5",
            "--ops",
            "500",
            "--keys",
            "100",
            "--pipeline",
            "4",
        ],
    );
    assert_eq!(r["results"]["operations"], 500);

    for mode in ["once", "acked"] {
        let r = bench(
            &server,
            dir.path(),
            &[
                "queue",
                "--mode",
                mode,
                "--consumers",
                "4",
                "--messages",
                "2000",
                "--window",
                "100",
            ],
        );
        assert_eq!(r["workload"], "queue");
        let q = &r["results"];
        assert_eq!(q["mode"], mode);
        assert_eq!(q["messages_sent"], 2000, "{q}");
        assert_eq!(q["messages_delivered"], 2000, "{q}");
        assert_eq!(q["lost"], 0, "{q}");
        assert_eq!(q["duplicates"], 0, "{q}");
        assert_eq!(q["errors"], 0, "{q}");
        assert_eq!(q["latency"]["samples"], 2000, "{q}");
    }

    let r = bench(&server, dir.path(), &["connections", "--count", "50"]);
    assert_eq!(r["results"]["connections"], 50);
    assert!(r["results"]["server_kib_per_connection"].is_number());
    drop(server);
}

#[test]
fn the_stall_workload_runs_and_counts_add_up() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("cache.dat");
    let server = runtime.block_on(TestServer::start_with(|c| {
        c.persistence_file = Some(file);
        c.persistence_interval = std::time::Duration::from_millis(100);
    }));
    let dir = tempfile::tempdir().unwrap();
    let mc = format!("tcp:{}", server.memcached);
    let r = bench(
        &server,
        dir.path(),
        &[
            "stall",
            "--keys",
            "300",
            "--size",
            "64",
            "--round-trips",
            "400",
            "--write-rate",
            "200",
            "--memcached-stats",
            &mc,
        ],
    );
    assert_eq!(r["workload"], "stall");
    assert_eq!(r["results"]["round_trips"], 400);
    assert_eq!(r["results"]["latency"]["samples"], 400);
    assert!(r["results"]["saves_during"].is_u64());
    assert!(r["results"]["memcached_stats_calls"].is_u64());
    assert!(r["results"]["max_ms"].is_number());
    drop(server);
}
