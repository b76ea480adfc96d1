//! Property test (a bounded fuzz run) of the command bodies over HTTP: valid bodies of every command
//! route with one field replaced by something hostile (NULs, huge or odd text, numbers out of range,
//! nesting, wrong types), whole bodies of arbitrary JSON, and bytes that are not JSON. Every answer
//! must be a 2xx or a 4xx with a machine-readable code, never a 5xx; afterwards every stored event
//! still decodes and the server still serves. `PROPTEST_CASES` sets the number of bodies (default 256).

use blazz_commands::codec::Codec;
use blazz_commands::store::LogCursor;
use blazz_domain::ids::{ChannelId, ContactId, ConversationId};
use blazz_tests::{TestApp, Ws, OPERATOR_TOKEN};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._+-]{0,16}",
        "[a-z]{0,3}\u{0}[a-z]{0,3}",
        Just("x".repeat(70_000)),
        Just("\u{202e}\u{feff}\u{1f600}".to_owned()),
        Just("+6281234567890".to_owned()),
        Just("Asia/Jakarta".to_owned()),
        Just("{{1}}".to_owned()),
        any::<String>(),
    ]
}

fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        hostile_text().prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(hostile_text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Valid bodies of the command routes (`{contact}`, `{channel}`, `{template}`, `{group}`,
/// `{conversation}`, `{agent}`, `{team}` filled in).
fn routes() -> Vec<(Method, &'static str, Value)> {
    vec![
        (
            Method::POST,
            "/v1/contacts",
            json!({"phone": "+6281200000001", "name": "Budi", "attributes": {"city": "Bandung", "tier": 2}}),
        ),
        (Method::PATCH, "/v1/contacts/{contact}", json!({"name": "Budi S", "attributes": {"city": "Solo"}})),
        (Method::POST, "/v1/contacts/{contact}/opt-out", json!({"reason": "asked"})),
        (
            Method::POST,
            "/v1/contacts/import",
            json!([{"phone": "+6281200000002", "name": "Siti", "attributes": {"a": 1}}]),
        ),
        (Method::POST, "/v1/groups", json!({"name": "VIP"})),
        (Method::PATCH, "/v1/groups/{group}", json!({"name": "VIP 2"})),
        (Method::POST, "/v1/groups/{group}/members", json!({"contact_ids": ["{contact}"]})),
        (
            Method::POST,
            "/v1/templates",
            json!({"name": "promo", "language": "id", "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Halo {{first_name}}"}], "defaults": {"first_name": "Kak"}}),
        ),
        (
            Method::POST,
            "/v1/messages",
            json!({"channel_id": "{channel}", "contact_id": "{contact}", "type": "text", "text": {"body": "Halo"}}),
        ),
        (
            Method::POST,
            "/v1/messages",
            json!({"channel_id": "{channel}", "contact_id": "{contact}", "type": "template",
            "template": {"id": "{template}", "variables": {"first_name": "Budi"}}}),
        ),
        (
            Method::POST,
            "/v1/campaigns",
            json!({"name": "flash", "channel_id": "{channel}", "template_id": "{template}",
            "audience": {"kind": "all"}, "variables": {"first_name": {"value": "Kak"}}}),
        ),
        (
            Method::POST,
            "/v1/channels",
            json!({"provider": "sandbox", "phone_number_id": "99887766", "display_phone_number": "+15550783881"}),
        ),
        (Method::PATCH, "/v1/channels/{channel}", json!({"rate_per_second": 5})),
        (Method::POST, "/v1/api-keys", json!({"name": "ci", "role": "agent"})),
        (Method::PATCH, "/v1/workspace", json!({"name": "Toko", "timezone": "Asia/Jakarta"})),
        (Method::POST, "/v1/conversations/{conversation}/status", json!({"status": "pending", "snoozed_until": null})),
        (Method::POST, "/v1/conversations/{conversation}/labels", json!({"add": ["vip"], "remove": ["old"]})),
        (
            Method::POST,
            "/v1/conversations/{conversation}/assignment",
            json!({"agent_id": "{agent}", "team_id": "{team}"}),
        ),
        (Method::POST, "/v1/conversations/{conversation}/priority", json!({"priority": "high"})),
        (Method::POST, "/v1/conversations/{conversation}/notes", json!({"text": "call back"})),
        (Method::POST, "/v1/conversations/{conversation}/messages", json!({"type": "text", "text": {"body": "Halo"}})),
        (Method::POST, "/v1/agents", json!({"name": "Sari", "email": "sari@example.com", "role": "agent"})),
        (Method::POST, "/v1/agents/{agent}/availability", json!({"availability": "online"})),
        (Method::POST, "/v1/teams", json!({"name": "Support", "auto_assign": true, "max_open_per_agent": 5})),
        (Method::POST, "/v1/teams/{team}/members", json!({"agent_ids": ["{agent}"]})),
        (Method::PATCH, "/v1/channels/{channel}", json!({"inbox_team_id": "{team}"})),
        (Method::POST, "/v1/api-keys", json!({"name": "sari", "agent_id": "{agent}"})),
        (Method::POST, "/v1/canned-responses", json!({"short_code": "hi", "text": "Hi {{contact.name}}"})),
        (
            Method::POST,
            "/v1/conversations/{conversation}/messages",
            json!({"type": "canned", "canned": {"short_code": "base"}}),
        ),
    ]
}

/// One field of `body` (found by walking `path`: an index into an object's keys or an array, taken
/// modulo its length) replaced; where the walk meets a scalar, that scalar is replaced.
fn replace(body: &mut Value, path: &[usize], with: Value) {
    let Some((&step, rest)) = path.split_first() else {
        *body = with;
        return;
    };
    match body {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(step % m.len()).cloned().unwrap_or_default();
            if let Some(v) = m.get_mut(&key) {
                replace(v, rest, with);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            replace(&mut a[step % n], rest, with);
        }
        _ => *body = with,
    }
}

/// A request body as bytes: a mutated valid body, arbitrary JSON, or bytes that are not JSON.
#[derive(Debug, Clone)]
enum Case {
    Mutated { route: usize, path: Vec<usize>, with: Value },
    Arbitrary { route: usize, body: Value },
    Bytes { route: usize, bytes: Vec<u8> },
}

fn case(routes: usize) -> impl Strategy<Value = Case> {
    prop_oneof![
        6 => (0..routes, prop::collection::vec(0usize..8, 0..4), hostile_value())
            .prop_map(|(route, path, with)| Case::Mutated { route, path, with }),
        2 => (0..routes, hostile_value()).prop_map(|(route, body)| Case::Arbitrary { route, body }),
        1 => (0..routes, prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                Just(br#"{"name": "\ud800"}"#.to_vec()),
                Just(b"{\"name\": \"\xff\xfe\"}".to_vec()),
                Just(br#"{"name": "a", "name": "b"}"#.to_vec()),
                Just("[".repeat(10_000).into_bytes()),
            ]).prop_map(|(route, bytes)| Case::Bytes { route, bytes }),
    ]
}

struct Fixture {
    ws: Ws,
    ids: Vec<(&'static str, String)>,
}

impl Fixture {
    async fn new(app: &TestApp) -> Self {
        let ws = app.workspace().await;
        let channel = app.channel_of(&ws, "sandbox").await.0;
        let contact = app.contact(&ws, "+6281299999999", json!({})).await;
        let template = app.template(&ws, "base", "MARKETING", "APPROVED").await;
        let group = app.post("/v1/groups", &ws.key, json!({"name": "base"})).await.expect(201).id("group_id");
        let (ch, co) = (Uuid::parse_str(&channel).unwrap(), Uuid::parse_str(&contact).unwrap());
        let (ch, co) = (ChannelId::from_uuid(ch), ContactId::from_uuid(co));
        app.commands()
            .record_inbound(&app.system(&ws), ch, co, "wamid.fixture".into(), chrono::Utc::now())
            .await
            .unwrap();
        let conversation = ConversationId::for_pair(ch, co).to_string();
        let agent = json!({"name": "base", "email": "base@example.com"});
        let agent = app.post("/v1/agents", &ws.key, agent).await.expect(201).id("agent_id");
        let team = app.post("/v1/teams", &ws.key, json!({"name": "base"})).await.expect(201).id("team_id");
        let canned = json!({"short_code": "base", "text": "Hi {{contact.name}}, {{contact.city}}"});
        app.post("/v1/canned-responses", &ws.key, canned).await.expect(201);
        let ids = vec![
            ("{contact}", contact),
            ("{channel}", channel),
            ("{template}", template),
            ("{group}", group),
            ("{conversation}", conversation),
            ("{agent}", agent),
            ("{team}", team),
        ];
        Self { ws, ids }
    }

    fn fill(&self, text: &str) -> String {
        self.ids.iter().fold(text.to_owned(), |t, (slot, id)| t.replace(slot, id))
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn no_command_body_gets_a_5xx_or_corrupts_the_log(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let fx = Fixture::new(&app).await;
    let routes = routes();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256u32);
    let mut runner = TestRunner::new(Config { cases, ..Config::default() });
    let strategy = case(routes.len());
    for n in 0..cases {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        let (route, bytes) = match &case {
            Case::Mutated { route, path, with } => {
                let mut body: Value =
                    serde_json::from_str(&fx.fill(&routes[*route].2.to_string())).expect("valid body");
                replace(&mut body, path, with.clone());
                (*route, serde_json::to_vec(&body).expect("encode"))
            }
            Case::Arbitrary { route, body } => (*route, serde_json::to_vec(body).expect("encode")),
            Case::Bytes { route, bytes } => (*route, bytes.clone()),
        };
        let (method, path, _) = &routes[route];
        let res = app
            .client
            .request(method.clone(), app.server.url(&fx.fill(path)))
            .bearer_auth(&fx.ws.key)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .expect("an answer");
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status < 500, "case {n} {method} {path}: {status} {body}\n{case:?}");
        if status >= 400 {
            assert!(body["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "case {n}: {status} {body}");
        }
    }
    // Everything stored still decodes, and the server still serves.
    let codec = Codec::new();
    let page = app.commands().store().read_log(LogCursor::START, 100_000, None).await.expect("log");
    for e in &page.events {
        codec.decode(e).unwrap_or_else(|err| panic!("event {} does not decode: {err}", e.position));
    }
    app.get("/v1/contacts", &fx.ws.key).await.expect(200);
    app.post("/v1/contacts", &fx.ws.key, json!({"phone": "+6281277777777"})).await.expect(201);
    // The operator's routes too.
    app.get("/v1/operator/parked-events", OPERATOR_TOKEN).await.expect(200);
}
