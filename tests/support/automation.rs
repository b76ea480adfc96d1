//! The automation tests' setting: a workspace with a Meta channel whose inbound messages come in as
//! signed webhooks and whose sends go to the fake Graph API, with the dispatcher, the deliverer and
//! the automation worker running.

use crate::fake_graph::FakeGraph;
use crate::{notification, Settings, TestApp, Ws, OPERATOR_TOKEN};
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

#[derive(Debug)]
pub struct Setup {
    pub app: TestApp,
    pub graph: FakeGraph,
    pub ws: Ws,
    pub channel: String,
    pub number: String,
}

pub async fn setup(pool: PgPool) -> Setup {
    setup_with(pool, |_| {}).await
}

/// The setting with `adjust` applied to the server's settings.
pub async fn setup_with(pool: PgPool, adjust: impl FnOnce(&mut Settings)) -> Setup {
    let graph = FakeGraph::start().await;
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    settings.edge.meta.base_url = graph.url();
    settings.edge.webhooks.poll = Duration::from_millis(10);
    // The fake model and webhook receivers listen on 127.0.0.1.
    settings.edge.webhooks.allow_private = true;
    adjust(&mut settings);
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let (channel, number) = app.channel_of(&ws, "meta").await;
    app.credentials(&ws, &channel).await;
    Setup { app, graph, ws, channel, number }
}

impl Setup {
    /// `from` (digits) writes `text`, through the channel's signed webhook.
    pub async fn inbound(&self, from: &str, text: &str) {
        self.inbound_of(from, "text", json!({"body": text})).await;
    }

    /// `from` sends a message of `kind` whose `kind` object is `part` (as Meta's webhook carries it).
    pub async fn inbound_of(&self, from: &str, kind: &str, part: Value) {
        let id = format!("wamid.{}", uuid::Uuid::now_v7().simple());
        let mut message =
            json!({"from": from, "id": id, "timestamp": Utc::now().timestamp().to_string(), "type": kind});
        message[kind] = part;
        let value = json!({"contacts": [{"profile": {"name": "Sari"}, "wa_id": from}], "messages": [message]});
        self.app.webhook(&self.channel, &notification(&self.number, value)).await.expect(200);
    }

    pub async fn rule(&self, body: Value) -> String {
        self.app.post("/v1/automation-rules", &self.ws.key, body).await.expect(201).id("rule_id")
    }

    /// The rule's runs once `n` of them have finished.
    pub async fn runs(&self, rule: &str, n: usize) -> Vec<Value> {
        let page = self
            .app
            .eventually(&self.ws, &format!("/v1/automation-rules/{rule}/runs"), |p| {
                p["items"].as_array().unwrap().iter().filter(|r| r["status"] != "pending").count() >= n
            })
            .await;
        page["items"].as_array().unwrap().clone()
    }

    /// Texts the fake Graph API was asked to send to `to`, once there are `n`.
    pub async fn sent_to(&self, to: &str, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let texts: Vec<String> = self
                .graph
                .calls()
                .iter()
                .filter(|c| c.body["to"] == to)
                .map(|c| c.body["text"]["body"].as_str().unwrap_or_default().to_owned())
                .collect();
            if texts.len() >= n {
                return texts;
            }
            assert!(tokio::time::Instant::now() < deadline, "{} of {n} sends arrived: {texts:?}", texts.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the workspace is still: the read models at the log's head, no run pending, no
    /// message waiting for the provider, and the head unchanged meanwhile.
    pub async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let ws: uuid::Uuid = self.ws.id.parse().unwrap();
        let head = || async {
            sqlx::query_scalar::<_, i64>("SELECT max(position) FROM events WHERE workspace_id = $1")
                .bind(ws)
                .fetch_one(&self.app.pool)
                .await
                .unwrap()
        };
        loop {
            let before = head().await;
            self.app.get(&format!("/v1/contacts?limit=1&min_position={before}"), &self.ws.key).await.expect(200);
            let busy: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM automation_runs WHERE workspace_id = $1 AND status = 'pending')
                      + (SELECT count(*) FROM rm_messages WHERE workspace_id = $1 AND direction = 'out'
                                                            AND status IN ('queued', 'dispatched'))",
            )
            .bind(ws)
            .fetch_one(&self.app.pool)
            .await
            .unwrap();
            if busy == 0 && head().await == before {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{busy} runs or sends still pending");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
