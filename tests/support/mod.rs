//! Test harness: the API on an ephemeral port of 127.0.0.1 against a fresh database (one per test,
//! from `#[sqlx::test]`), and a client that speaks to it over HTTP.

pub mod automation;
pub mod broker;
pub mod browser;
pub mod fake_graph;
pub mod inbox;
pub mod outbound;
pub mod s3;

use blazz_api::server::Running;
pub use blazz_api::server::Settings;
use blazz_commands::{CommandContext, Commands};
use blazz_domain::ids::{ChannelId, ContactId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

pub use blazz_commands::store::postgres::MIGRATOR;

pub const OPERATOR_TOKEN: &str = "test-operator-token";

#[derive(Debug)]
pub struct TestApp {
    pub server: Running,
    pub client: reqwest::Client,
    pub pool: PgPool,
}

/// A workspace with its owner key.
#[derive(Debug, Clone)]
pub struct Ws {
    pub id: String,
    pub key: String,
}

/// An HTTP answer: status, headers and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn id(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_else(|| panic!("no {field} in {}", self.body)).to_owned()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {}", self.body);
        self
    }
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, Settings::new(4, Some(OPERATOR_TOKEN.into()))).await
    }

    pub async fn spawn_with(pool: PgPool, settings: Settings) -> Self {
        // BLAZZ_TEST_LOG=<filter> (e.g. `blazz_projections=debug`) shows the server's logs in a test's output.
        if let Ok(filter) = std::env::var("BLAZZ_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let server = Running::start(pool.clone(), settings).await.expect("server starts");
        Self { server, client: reqwest::Client::new(), pool }
    }

    pub fn commands(&self) -> &Commands {
        &self.server.state.commands
    }

    /// A system context in a workspace, for what the API does not expose yet (e.g. inbound messages).
    pub fn system(&self, ws: &Ws) -> CommandContext {
        CommandContext::system(Uuid::parse_str(&ws.id).expect("uuid"), "test")
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.client.request(method, self.server.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(key), Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(key), Some(body), &[]).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Answer {
        self.call(Method::GET, path, Some(key), None, &[]).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Answer {
        self.call(Method::DELETE, path, Some(key), None, &[]).await
    }

    /// Appends an event straight to the log, past every check of the write side (as a bug or an old
    /// version might have written it); returns its position.
    pub async fn append_raw(&self, ws: &Ws, stream: &str, event: blazz_commands::store::NewEvent) -> i64 {
        use blazz_commands::store::{AppendRequest, EventMetadata, ExpectedVersion};
        let meta = EventMetadata {
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            actor: "test".into(),
            request_id: None,
            agent_id: None,
        };
        let workspace = ws.id.parse().expect("workspace id");
        let request = AppendRequest::new(stream.into(), workspace, ExpectedVersion::Any, vec![event], meta);
        self.commands().store().append(request).await.expect("append").position.expect("position")
    }

    pub async fn workspace(&self) -> Ws {
        let a = self
            .post("/v1/workspaces", OPERATOR_TOKEN, json!({"name": "Toko Budi", "timezone": "Asia/Jakarta"}))
            .await
            .expect(201);
        Ws { id: a.id("workspace_id"), key: a.body["api_key"]["key"].as_str().expect("key").to_owned() }
    }

    pub async fn channel(&self, ws: &Ws) -> String {
        self.channel_of(ws, "meta").await.0
    }

    /// A channel of `provider` (meta or sandbox): its id and its provider phone number id.
    pub async fn channel_of(&self, ws: &Ws, provider: &str) -> (String, String) {
        let number_id = format!("{}", Uuid::now_v7().as_u128() % 1_000_000_000_000_000);
        let id = self
            .post(
                "/v1/channels",
                &ws.key,
                json!({"provider": provider, "phone_number_id": number_id, "display_phone_number": "+15550783881"}),
            )
            .await
            .expect(201)
            .id("channel_id");
        (id, number_id)
    }

    pub async fn contact(&self, ws: &Ws, phone: &str, attributes: Value) -> String {
        self.post("/v1/contacts", &ws.key, json!({"phone": phone, "name": "Budi", "attributes": attributes}))
            .await
            .expect(201)
            .id("contact_id")
    }

    /// A template with one named body variable, reviewed with `status` by the operator.
    pub async fn template(&self, ws: &Ws, name: &str, category: &str, status: &str) -> String {
        let id = self
            .post(
                "/v1/templates",
                &ws.key,
                json!({"name": name, "language": "id", "category": category,
                       "components": [{"type": "BODY", "text": "Halo {{first_name}}, diskon {{discount}}"}],
                       "defaults": {"discount": "10%"}}),
            )
            .await
            .expect(201)
            .id("template_id");
        self.post(
            &format!("/v1/templates/{id}/review"),
            OPERATOR_TOKEN,
            json!({"workspace_id": ws.id, "status": status}),
        )
        .await
        .expect(200);
        id
    }

    /// Stores credentials for a channel; the app secret is `secret-<channel>` and the verify token
    /// `verify-<channel>`.
    pub async fn credentials(&self, ws: &Ws, channel: &str) {
        self.call(
            Method::PUT,
            &format!("/v1/channels/{channel}/credentials"),
            Some(&ws.key),
            Some(json!({"access_token": format!("token-{channel}"), "app_secret": format!("secret-{channel}"),
                        "verify_token": format!("verify-{channel}")})),
            &[],
        )
        .await
        .expect(200);
    }

    /// POSTs raw bytes to the channel's webhook path with the given signature header (if any).
    pub async fn webhook_raw(&self, channel: &str, body: Vec<u8>, signature: Option<String>) -> Answer {
        let mut req = self
            .client
            .post(self.server.url(&format!("/v1/webhooks/meta/{channel}")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// POSTs a notification to the channel's webhook path, signed with its app secret as Meta does.
    pub async fn webhook(&self, channel: &str, notification: &Value) -> Answer {
        let body = serde_json::to_vec(notification).expect("json");
        let sig = blazz_commands::provider::signature::sign(&format!("secret-{channel}"), &body);
        self.webhook_raw(channel, body, Some(sig)).await
    }

    /// Waits (bounded) until `check` accepts the answer of GET `path`.
    pub async fn eventually(&self, ws: &Ws, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let a = self.get(path, &ws.key).await;
            if a.status.is_success() && check(&a.body) {
                return a.body;
            }
            assert!(tokio::time::Instant::now() < deadline, "condition not reached; last answer of {path}: {}", a.body);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Launches a campaign (202 `launching`) and waits (bounded) for its background fan-out to end;
    /// answers the payload of its `campaign.launched` event (`queued`, `skipped`).
    pub async fn launch(&self, ws: &Ws, campaign: &str) -> Value {
        let started = self.post(&format!("/v1/campaigns/{campaign}/launch"), &ws.key, json!({})).await.expect(202);
        assert_eq!(started.body["status"], "launching", "{}", started.body);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let a = self.get(&format!("/v1/history/streams/campaign-{campaign}"), &ws.key).await.expect(200);
            let events = a.body["events"].as_array().cloned().unwrap_or_default();
            if let Some(e) = events.iter().find(|e| e["event_type"] == "campaign.launched") {
                let mut payload = e["payload"].clone();
                payload["position"] = e["position"].clone();
                return payload;
            }
            assert!(tokio::time::Instant::now() < deadline, "campaign {campaign} did not finish launching");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The workspace's whole history, in log order (bounded wait for the read horizon).
    pub async fn history(&self, ws: &Ws) -> Vec<Value> {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE workspace_id = $1")
            .bind(Uuid::parse_str(&ws.id).expect("uuid"))
            .fetch_one(&self.pool)
            .await
            .expect("count");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let (mut events, mut cursor) = (vec![], String::new());
        while (events.len() as i64) < total {
            let page = self.get(&format!("/v1/history/events?limit=1000&after={cursor}"), &ws.key).await.expect(200);
            let batch = page.body["events"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                assert!(tokio::time::Instant::now() < deadline, "history stalled");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
            cursor = page.body["next_cursor"].as_str().expect("cursor").to_owned();
            events.extend(batch);
        }
        events
    }

    /// Event types of one stream.
    pub async fn stream_types(&self, ws: &Ws, stream: &str) -> Vec<String> {
        let a = self.get(&format!("/v1/history/streams/{stream}"), &ws.key).await.expect(200);
        a.body["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["event_type"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// A WebSocket client of `/v1/stream`.
pub struct Live {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Live {
    pub async fn connect(app: &TestApp, key: &str, after: Option<&str>) -> Self {
        let (socket, _) =
            tokio_tungstenite::connect_async(Self::request(app, key, after)).await.expect("websocket connects");
        Self { socket }
    }

    /// A client whose socket takes in little before it must be read (a 4 KiB receive buffer), for
    /// tests of clients that stop reading.
    pub async fn connect_small(app: &TestApp, key: &str) -> Self {
        let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
        tcp.set_recv_buffer_size(4096).expect("receive buffer");
        let stream = tcp.connect(app.server.addr).await.expect("connect");
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (socket, _) =
            tokio_tungstenite::client_async(Self::request(app, key, None), stream).await.expect("websocket connects");
        Self { socket }
    }

    fn request(
        app: &TestApp,
        key: &str,
        after: Option<&str>,
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let query = after.map(|a| format!("?after={a}")).unwrap_or_default();
        let mut req = format!("ws://{}/v1/stream{query}", app.server.addr).into_client_request().expect("request");
        req.headers_mut().insert("authorization", format!("Bearer {key}").parse().expect("header"));
        req
    }

    /// The next JSON message (bounded wait: a missing message fails the test instead of hanging).
    pub async fn next(&mut self) -> Value {
        use futures::StreamExt;
        loop {
            let msg = tokio::time::timeout(std::time::Duration::from_secs(10), self.socket.next())
                .await
                .expect("a message within 10 s")
                .expect("socket open")
                .expect("message");
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                return serde_json::from_str(&t).expect("json message");
            }
        }
    }

    /// Whether the server closes the socket within `within` (messages before the close are skipped).
    pub async fn closed_within(&mut self, within: std::time::Duration) -> bool {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next delta of `kind`, skipping others (and progress ticks).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let m = self.next().await;
            if (m["kind"] == kind && m["type"] != "progress") || m["type"] == "resync" {
                return m;
            }
        }
    }
}

/// A gateway that dispatches to a quick sandbox ([`quick_sandbox`]), with a workspace and a sandbox
/// channel that has credentials: the app, the workspace and the channel id.
pub async fn sandbox_app(pool: PgPool) -> (TestApp, Ws, String) {
    let mut settings = Settings::new(4, Some(OPERATOR_TOKEN.into()));
    settings.edge.dispatch = true;
    settings.edge.sandbox = quick_sandbox();
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let (channel, _) = app.channel_of(&ws, "sandbox").await;
    app.credentials(&ws, &channel).await;
    (app, ws, channel)
}

/// A sandbox that plays a message's life back quickly (sent, delivered, read within 60 ms), without
/// a reply.
pub fn quick_sandbox() -> blazz_commands::provider::sandbox::SandboxScript {
    blazz_commands::provider::sandbox::SandboxScript {
        sent_after: std::time::Duration::from_millis(20),
        delivered_after: std::time::Duration::from_millis(40),
        read_after: Some(std::time::Duration::from_millis(60)),
        fail_with: None,
        reply: None,
    }
}

/// A Meta notification with one `messages` change for `phone_number_id`.
pub fn notification(phone_number_id: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": "15550783881", "phone_number_id": phone_number_id});
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]})
}

/// A provider timestamp (Unix seconds) `offset` seconds after noon UTC yesterday: inside the window
/// Blazz accepts provider times in (30 days back, 10 minutes ahead), on a known day.
pub fn provider_time(offset: i64) -> i64 {
    let noon_yesterday = (chrono::Utc::now().timestamp() / 86_400 - 1) * 86_400 + 43_200;
    noon_yesterday + offset
}

/// A status of our message `message_id` (callback data) with wamid `wamid`, at `provider_time(ts)`.
pub fn status(message_id: &str, wamid: &str, status: &str, ts: i64) -> Value {
    json!({"id": wamid, "status": status, "timestamp": provider_time(ts).to_string(), "recipient_id": "6281234567890",
           "biz_opaque_callback_data": message_id})
}

/// Rows of `tables` (as sorted JSON) and their index definitions: equal dumps mean equal read models.
pub async fn dump(pool: &PgPool, tables: &[&str]) -> Vec<Value> {
    let mut out = vec![];
    for t in tables {
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname",
        )
        .bind(t)
        .fetch_all(pool)
        .await
        .expect("indexes");
        out.push(json!(indexes));
    }
    for t in tables {
        let rows: Value = sqlx::query_scalar(&format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY to_jsonb(x)::text), '[]') FROM {t} x"
        ))
        .fetch_one(pool)
        .await
        .expect("dump");
        out.push(rows);
    }
    out
}

/// A bit of everything in `ws` (contacts with attributes, a group with members, an opt-out, a
/// deletion, an inbound message, a template message); returns the position of its last command.
pub async fn mixed_workload(app: &TestApp, ws: &Ws) -> i64 {
    let channel = app.channel(ws).await;
    let template = app.template(ws, "promo", "MARKETING", "APPROVED").await;
    let mut contacts = vec![];
    for i in 0..6 {
        contacts.push(
            app.contact(ws, &format!("+628120000000{i}"), json!({"first_name": format!("C{i}"), "tier": i})).await,
        );
    }
    let group = app.post("/v1/groups", &ws.key, json!({"name": "VIP"})).await.expect(201).id("group_id");
    app.post(&format!("/v1/groups/{group}/members"), &ws.key, json!({"contact_ids": contacts[..4]})).await.expect(200);
    app.post(&format!("/v1/contacts/{}/opt-out", contacts[1]), &ws.key, json!({"reason": "STOP"})).await.expect(200);
    app.delete(&format!("/v1/contacts/{}", contacts[5]), &ws.key).await.expect(200);
    let chan = ChannelId::from_uuid(Uuid::parse_str(&channel).expect("uuid"));
    let cont = ContactId::from_uuid(Uuid::parse_str(&contacts[0]).expect("uuid"));
    app.commands()
        .record_inbound(&app.system(ws), chan, cont, "wamid.1".into(), chrono::Utc::now())
        .await
        .expect("inbound");
    let sent = app
        .post(
            "/v1/messages",
            &ws.key,
            json!({"channel_id": channel, "contact_id": contacts[0], "type": "template", "template": {"id": template}}),
        )
        .await
        .expect(202);
    sent.body["position"].as_i64().expect("p")
}

/// What `blazz audit export` writes for `selection` of the app's log: the events as stored (sealed),
/// their personal fields opened with the app's data keys.
pub async fn export_of(
    app: &TestApp,
    selection: blazz_api::cli::audit::Selection,
    format: blazz_api::cli::audit::Format,
) -> Vec<u8> {
    use blazz_commands::store::postgres::{BatchConfig, PgEventStore};
    let sealed = PgEventStore::new(app.pool.clone(), BatchConfig::default());
    let vault = app.commands().vault().expect("the app seals personal data");
    let mut out = Vec::new();
    let mut progress = blazz_api::cli::progress::JobProgress::lines(Box::new(std::io::sink()), "export", "events", 0);
    blazz_api::cli::audit::export(&sealed, vault, selection, format, &mut out, &mut progress).await.expect("export");
    out
}
