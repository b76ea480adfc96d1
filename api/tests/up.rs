//! `blazz up` as a newcomer runs it: no DATABASE_URL, a fresh data directory. It must initialise and
//! start its own PostgreSQL, print the address it serves, accept the generated operator token, and on
//! SIGTERM shut down and stop the cluster.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pg_running(pgdata: &std::path::Path) -> bool {
    pgdata.join("postmaster.pid").exists()
}

#[tokio::test]
async fn blazz_up_serves_on_a_private_cluster_and_stops_it_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("blazz-up-test-{}", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_blazz"))
        .arg("up")
        .env_remove("DATABASE_URL")
        .env_remove("BLAZZ_OPERATOR_TOKEN")
        .env("BLAZZ_DATA_DIR", &dir)
        .env("BLAZZ_ADDR", "127.0.0.1:0")
        .env("BLAZZ_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("blazz starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let url = loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("blazz up prints its address");
        if let Some(rest) = line.strip_prefix("Blazz API listening on ") {
            break rest.trim().to_owned();
        }
    };
    let pgdata = dir.join("postgres");
    assert!(pg_running(&pgdata), "the private cluster runs under the data directory");

    let client = reqwest::Client::new();
    let health: serde_json::Value =
        client.get(format!("{url}/healthz")).send().await.expect("healthz").json().await.expect("json");
    assert_eq!(health["status"], "ok");
    let token = std::fs::read_to_string(dir.join("operator-token")).expect("operator token written");
    let res = client
        .post(format!("{url}/v1/workspaces"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({"name": "first"}))
        .send()
        .await
        .expect("create workspace");
    assert_eq!(res.status().as_u16(), 201);

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("blazz exits");
    assert!(status.success(), "clean shutdown: {status}");
    assert!(!pg_running(&pgdata), "the private cluster was stopped");
    let _ = std::fs::remove_dir_all(&dir);
}
