//! The bot hand-off over real sockets: a local fake of an OpenAI-compatible chat-completions
//! endpoint (the documented request and answer shapes: `messages`, `tools`, `choices[0].message`,
//! `tool_calls`, `logprobs`) answers as scripted; inbound messages come in as signed Meta webhooks.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use blazz_tests::automation::{setup, Setup};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
struct Model {
    /// Requests received: (authorization header, body).
    got: Arc<Mutex<Vec<(String, Value)>>>,
    /// Answers in turn (status, body); a plain answer once they run out.
    answers: Arc<Mutex<VecDeque<(u16, Value)>>>,
}

fn said(text: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "toko-1",
           "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]})
}

async fn completions(State(m): State<Model>, headers: HeaderMap, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    m.got.lock().unwrap().push((auth, body));
    let (status, answer) = m.answers.lock().unwrap().pop_front().unwrap_or((200, said("Kami buka jam 9")));
    (StatusCode::from_u16(status).unwrap(), Json(answer))
}

/// The fake model on 127.0.0.1; answers its base URL.
async fn model(m: Model) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions)).with_state(m);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

async fn with_bot(pool: PgPool, extra: Value) -> (Setup, Model) {
    let s = setup(pool).await;
    let m = Model::default();
    let mut body = json!({"base_url": model(m.clone()).await, "model": "toko-1", "api_key": "sk-test",
                          "system_prompt": "Kamu asisten Toko Budi.", "handoff_keywords": ["agent", "manusia"]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let shown = s.app.call(reqwest::Method::PUT, "/v1/bot", Some(&s.ws.key), Some(body), &[]).await.expect(200).body;
    assert_eq!(shown["has_api_key"], true, "{shown}");
    assert!(!shown.to_string().contains("sk-test"), "the key is never shown: {shown}");
    (s, m)
}

/// The only conversation of the workspace, once it exists.
async fn conversation(s: &Setup) -> String {
    let list = s.app.eventually(&s.ws, "/v1/conversations", |l| l["items"][0].is_object()).await;
    list["items"][0]["conversation_id"].as_str().unwrap().to_owned()
}

async fn pending(s: &Setup, conversation: &str) {
    let path = format!("/v1/conversations/{conversation}/status");
    s.app.post(&path, &s.ws.key, json!({"status": "pending"})).await.expect(200);
}

async fn status(s: &Setup, conversation: &str) -> String {
    s.settled().await;
    let c = s.app.get(&format!("/v1/conversations/{conversation}"), &s.ws.key).await.expect(200).body;
    c["status"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_bot_answers_pending_conversations_only_with_their_recent_messages(pool: PgPool) {
    let (s, m) = with_bot(pool, json!({})).await;
    s.inbound("6281234500010", "Halo").await;
    let c = conversation(&s).await;
    s.settled().await;
    assert!(m.got.lock().unwrap().is_empty(), "an open conversation is the agents'");

    pending(&s, &c).await;
    s.inbound("6281234500010", "Jam berapa buka?").await;
    assert_eq!(s.sent_to("6281234500010", 1).await, ["Kami buka jam 9"]);
    let (auth, body) = m.got.lock().unwrap()[0].clone();
    assert_eq!(auth, "Bearer sk-test");
    assert_eq!(body["model"], "toko-1");
    let roles: Vec<(&str, &str)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [("system", "Kamu asisten Toko Budi."), ("user", "Halo"), ("user", "Jam berapa buka?")]);
    assert_eq!(body["tools"][0]["function"]["name"], "handoff");
    assert_eq!(status(&s, &c).await, "pending", "the bot answered; the conversation stays with it");

    // The next turn sees the bot's own answer as the assistant's.
    s.inbound("6281234500010", "Terima kasih").await;
    s.sent_to("6281234500010", 2).await;
    let (_, body) = m.got.lock().unwrap()[1].clone();
    let history: Vec<&str> = body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(history, ["system", "user", "user", "assistant", "user"], "{body}");
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn the_bot_hands_off_on_a_keyword_a_tool_call_low_confidence_or_a_failure(pool: PgPool) {
    let (s, m) = with_bot(pool, json!({"min_confidence": 0.8})).await;
    let sure = |text: &str| {
        let mut a = said(text);
        a["choices"][0]["logprobs"] = json!({"content": [{"token": "ok", "logprob": -0.01, "top_logprobs": []}]});
        a
    };
    let unsure = {
        let mut a = said("Mungkin besok?");
        a["choices"][0]["logprobs"] = json!({"content": [{"token": "Mungkin", "logprob": -1.5, "top_logprobs": []}]});
        a
    };
    let handoff = json!({"id": "chatcmpl-2", "object": "chat.completion", "model": "toko-1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "handoff", "arguments": "{\"reason\": \"refund request\"}"}}]}}]});
    m.answers.lock().unwrap().extend([
        (200, handoff),
        (200, unsure),
        (500, json!({"error": {"message": "overloaded"}})),
        (200, sure("Siap")),
    ]);
    s.inbound("6281234500011", "Halo").await;
    let c = conversation(&s).await;

    let mut reasons = vec![];
    for text in ["Saya mau refund", "Mau bicara dengan AGENT", "Kapan buka?", "Halo?", "Ok"] {
        pending(&s, &c).await;
        s.inbound("6281234500011", text).await;
        reasons.push((text, status(&s, &c).await));
    }
    assert_eq!(
        reasons,
        [
            ("Saya mau refund", "open".into()),
            ("Mau bicara dengan AGENT", "open".into()),
            ("Kapan buka?", "open".into()),
            ("Halo?", "open".into()),
            ("Ok", "pending".into())
        ],
        "tool call, keyword, low confidence and failure hand off; a confident answer does not"
    );
    assert_eq!(m.got.lock().unwrap().len(), 4, "a keyword hands off without asking the model");
    assert_eq!(s.sent_to("6281234500011", 1).await, ["Siap"]);
    let notes = s.app.get(&format!("/v1/conversations/{c}/notes"), &s.ws.key).await.expect(200).body;
    let texts: Vec<&str> = notes["items"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 4, "{notes}");
    for (note, why) in texts.iter().zip(["refund request", "\"agent\"", "confidence 0.22", "500"]) {
        assert!(note.contains(why), "{note:?} should say {why}");
    }
}

#[sqlx::test(migrator = "blazz_tests::MIGRATOR")]
async fn bot_settings_are_validated_kept_per_workspace_and_for_admins(pool: PgPool) {
    let s = blazz_tests::automation::setup(pool).await;
    let put = |body: Value, key: String| {
        let app = &s.app;
        async move { app.call(reqwest::Method::PUT, "/v1/bot", Some(&key), Some(body), &[]).await }
    };
    let good = json!({"base_url": "https://llm.example.com/v1", "model": "m", "system_prompt": "p"});
    for (field, value) in
        [("base_url", json!("ftp://x")), ("min_confidence", json!(1.5)), ("history", json!(99)), ("model", json!(""))]
    {
        let mut body = good.clone();
        body[field] = value;
        assert_eq!(put(body, s.ws.key.clone()).await.expect(422).code(), "validation_failed", "{field}");
    }
    put(good.clone(), s.ws.key.clone()).await.expect(200);
    let agent = s.app.post("/v1/api-keys", &s.ws.key, json!({"name": "a", "role": "agent"})).await.expect(201);
    s.app.get("/v1/bot", agent.body["key"].as_str().unwrap()).await.expect(403);
    let other = s.app.workspace().await;
    s.app.get("/v1/bot", &other.key).await.expect(404);
    s.app.delete("/v1/bot", &s.ws.key).await.expect(200);
    s.app.get("/v1/bot", &s.ws.key).await.expect(404);
}
