//! `blazz up --demo` as a newcomer runs it: no DATABASE_URL, a fresh data directory. It must initialise
//! and start its own PostgreSQL, print the address it serves, accept the generated operator token, take
//! a message of the demo workspace through the sandbox loop to `read`, and on SIGTERM shut down and stop
//! the cluster.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pg_running(pgdata: &std::path::Path) -> bool {
    pgdata.join("postmaster.pid").exists()
}

fn terminate(child: &std::process::Child) -> bool {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().is_ok_and(|s| s.success())
}

/// Stops `blazz up` (and with it its cluster) when the test fails half-way, so nothing is left running.
struct StopOnFailure(std::process::Child);

impl Drop for StopOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() && terminate(&self.0) {
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn blazz_up_demo_serves_on_a_private_cluster_runs_the_sandbox_loop_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("blazz-up-test-{}", uuid::Uuid::new_v4().simple()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_blazz"))
        .args(["up", "--demo"])
        .env_remove("DATABASE_URL")
        .env_remove("BLAZZ_OPERATOR_TOKEN")
        .env("BLAZZ_DATA_DIR", &dir)
        .env("BLAZZ_ADDR", "127.0.0.1:0")
        .env("BLAZZ_LOG", "warn")
        .env("BLAZZ_SANDBOX_DELAY_MS", "20")
        .stdout(Stdio::piped())
        .spawn()
        .expect("blazz starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut child = StopOnFailure(child);
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
    let (mut demo_key, mut channel) = (None, None);
    while demo_key.is_none() {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the demo is printed");
        if let Some((_, c)) = line.split_once(" with sandbox channel ") {
            channel = Some(c.trim().to_owned());
        }
        demo_key = line.strip_prefix("Demo API key (shown once): ").map(|k| k.trim().to_owned());
    }
    let (demo_key, channel) = (demo_key.expect("demo key"), channel.expect("the demo channel is printed"));
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

    // The demo workspace's sandbox channel takes a template message from queued to read.
    let post = |path: &str, key: &str, body: serde_json::Value| {
        let req = client.post(format!("{url}{path}")).bearer_auth(key).json(&body);
        async move {
            let res = req.send().await.expect("request");
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<serde_json::Value>().await.expect("json")
        }
    };
    let contact = post("/v1/contacts", &demo_key, serde_json::json!({"phone": "+6281234567890"})).await;
    let template = post(
        "/v1/templates",
        &demo_key,
        serde_json::json!({"name": "hello", "language": "en", "category": "UTILITY",
                           "components": [{"type": "BODY", "text": "Hello from Blazz"}]}),
    )
    .await;
    let template = template["template_id"].as_str().unwrap().to_owned();
    let workspace: serde_json::Value =
        client.get(format!("{url}/v1/workspace")).bearer_auth(&demo_key).send().await.unwrap().json().await.unwrap();
    post(
        &format!("/v1/templates/{template}/review"),
        token.trim(),
        serde_json::json!({"workspace_id": workspace["workspace_id"], "status": "APPROVED"}),
    )
    .await;
    let sent = post(
        "/v1/messages",
        &demo_key,
        serde_json::json!({"channel_id": channel, "contact_id": contact["contact_id"], "type": "template",
                           "template": {"id": template}}),
    )
    .await;
    let message = sent["message_id"].as_str().unwrap().to_owned();
    let read_by = Instant::now() + Duration::from_secs(30);
    loop {
        let m = client.get(format!("{url}/v1/messages/{message}")).bearer_auth(&demo_key).send().await.unwrap();
        let m: serde_json::Value = m.json().await.unwrap_or_default();
        if m["status"] == "read" {
            break;
        }
        assert!(Instant::now() < read_by, "the demo message did not reach read: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(terminate(&child.0), "SIGTERM sent");
    let status = child.0.wait().expect("blazz exits");
    assert!(status.success(), "clean shutdown: {status}");
    assert!(!pg_running(&pgdata), "the private cluster was stopped");
    let _ = std::fs::remove_dir_all(&dir);
}
