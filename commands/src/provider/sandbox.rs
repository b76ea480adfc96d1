//! The sandbox provider: accepts every send and then plays the message's life back to us the way Meta
//! would: signed webhook POSTs in Meta's format (sent, delivered, read, or failed with a chosen code,
//! and optionally an inbound reply) to our own ingestion endpoint, after configurable delays.

use super::{signature, Accepted, Outbound, Provider, SendError, Sender};
use crate::credentials::ChannelSecrets;
use async_trait::async_trait;
use blazz_domain::values::Destination;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// What happens to each message sent through the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxScript {
    pub sent_after: Duration,
    pub delivered_after: Duration,
    /// `None`: the recipient never reads it.
    pub read_after: Option<Duration>,
    /// Fail every message with this Meta error code (after `sent_after`) instead of delivering it.
    pub fail_with: Option<i64>,
    /// The recipient answers with this text after reading.
    pub reply: Option<String>,
}

impl Default for SandboxScript {
    fn default() -> Self {
        Self {
            sent_after: Duration::from_millis(100),
            delivered_after: Duration::from_millis(300),
            read_after: Some(Duration::from_millis(600)),
            fail_with: None,
            reply: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SandboxProvider {
    /// Our own base URL, e.g. `http://127.0.0.1:8080`.
    ingest_base: String,
    script: SandboxScript,
    http: reqwest::Client,
}

impl SandboxProvider {
    pub fn new(ingest_base: impl Into<String>, script: SandboxScript) -> Self {
        Self { ingest_base: ingest_base.into(), script, http: reqwest::Client::new() }
    }
}

fn unix_now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

/// One Meta notification with one `messages` change.
fn notification(phone_number_id: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({ "display_phone_number": "sandbox", "phone_number_id": phone_number_id });
    json!({ "object": "whatsapp_business_account",
            "entry": [{ "id": "sandbox-waba", "changes": [{ "field": "messages", "value": value }] }] })
}

/// The recipient as Meta names it: `(key, value)` of the phone number (`wa_id` digits) or, for a
/// user known only by it, the business-scoped user id.
fn who(to: &Destination) -> (&'static str, String) {
    match to {
        Destination::Phone(p) => ("wa_id", p.digits().to_owned()),
        Destination::User(u) => ("user_id", u.as_str().to_owned()),
    }
}

fn status(wamid: &str, status: &str, to: &(&'static str, String), ours: &str) -> Value {
    let mut s = json!({ "id": wamid, "status": status, "timestamp": unix_now(), "biz_opaque_callback_data": ours });
    s[if to.0 == "wa_id" { "recipient_id" } else { "recipient_user_id" }] = json!(to.1);
    if status == "sent" {
        s["conversation"] = json!({ "id": format!("sandbox-{ours}"), "origin": { "type": "service" } });
        s["pricing"] = json!({ "billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service" });
    }
    s
}

/// Posts one signed notification, retrying like Meta does (a few times, with backoff).
async fn post(http: &reqwest::Client, url: &str, app_secret: &str, body: &Value) {
    let bytes = serde_json::to_vec(body).expect("JSON serialises");
    let sig = signature::sign(app_secret, &bytes);
    for attempt in 0..5u32 {
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header(signature::HEADER, &sig)
            .body(bytes.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(status = %r.status(), attempt, "sandbox webhook refused"),
            Err(e) => tracing::warn!(error = %e, attempt, "sandbox webhook failed"),
        }
        tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
    }
}

#[async_trait]
impl Provider for SandboxProvider {
    async fn upload(&self, _: &Sender, _: &ChannelSecrets, _: &super::Upload) -> Result<String, SendError> {
        Ok(format!("sandbox-media-{}", Uuid::new_v4().simple()))
    }

    async fn send(&self, sender: &Sender, secrets: &ChannelSecrets, message: &Outbound) -> Result<Accepted, SendError> {
        let wamid = format!("wamid.SANDBOX.{}", Uuid::new_v4().simple());
        let (http, script) = (self.http.clone(), self.script.clone());
        let url = format!("{}/v1/webhooks/meta/{}", self.ingest_base.trim_end_matches('/'), sender.channel_id);
        let secret = secrets.app_secret.expose().to_owned();
        let (pnid, to) = (sender.phone_number_id.clone(), who(&message.to));
        let (ours, id) = (message.message_id.as_uuid().to_string(), wamid.clone());
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let at = |d: Duration| tokio::time::sleep_until(start + d);
            let one = |s: Value| notification(&pnid, json!({ "statuses": [s] }));
            at(script.sent_after).await;
            if let Some(code) = script.fail_with {
                let mut failed = status(&id, "failed", &to, &ours);
                failed["errors"] = json!([{ "code": code, "title": "Sandbox failure", "message": "Sandbox failure",
                                            "error_data": { "details": format!("sandbox configured to fail with {code}") } }]);
                post(&http, &url, &secret, &one(failed)).await;
                return;
            }
            post(&http, &url, &secret, &one(status(&id, "sent", &to, &ours))).await;
            at(script.delivered_after).await;
            post(&http, &url, &secret, &one(status(&id, "delivered", &to, &ours))).await;
            let Some(read_after) = script.read_after else { return };
            at(read_after).await;
            post(&http, &url, &secret, &one(status(&id, "read", &to, &ours))).await;
            if let Some(text) = script.reply {
                // From a phone number: `from` and `wa_id`; from a user known by BSUID: `from_user_id`
                // and `user_id`, as Meta sends them for a user who hides their number.
                let from = if to.0 == "wa_id" { "from" } else { "from_user_id" };
                let mut contact = json!({ "profile": { "name": "Sandbox recipient" } });
                contact[to.0] = json!(to.1);
                let mut message = json!({ "id": format!("wamid.SANDBOX.IN.{}", Uuid::new_v4().simple()),
                                          "timestamp": unix_now(), "type": "text", "text": { "body": text },
                                          "context": { "from": pnid, "id": id } });
                message[from] = json!(to.1);
                let reply = json!({ "contacts": [contact], "messages": [message] });
                post(&http, &url, &secret, &notification(&pnid, reply)).await;
            }
        });
        Ok(Accepted { provider_message_id: wamid })
    }
}
