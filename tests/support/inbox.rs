//! The inbox's test setting: a workspace with a channel and a contact, whose messages come in
//! through the write side (as the webhook path records them), and helpers for its routes.

use crate::{Answer, Settings, TestApp, Ws};
use blazz_domain::ids::{ChannelId, ContactId, ConversationId};
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug)]
pub struct Setup {
    pub app: TestApp,
    pub ws: Ws,
    pub channel: ChannelId,
    pub contact: ContactId,
}

pub async fn setup(pool: PgPool, settings: Settings) -> Setup {
    let app = TestApp::spawn_with(pool, settings).await;
    let ws = app.workspace().await;
    let channel = ChannelId::from_uuid(Uuid::parse_str(&app.channel(&ws).await).unwrap());
    let contact = ContactId::from_uuid(Uuid::parse_str(&app.contact(&ws, "+6281234567890", json!({})).await).unwrap());
    Setup { app, ws, channel, contact }
}

impl Setup {
    /// The contact writes; answers the conversation id and the log position.
    pub async fn inbound(&self) -> (String, i64) {
        let ctx = self.app.system(&self.ws);
        let wamid = format!("wamid.{}", Uuid::now_v7());
        let r = self.app.commands().record_inbound(&ctx, self.channel, self.contact, wamid, Utc::now()).await.unwrap();
        (ConversationId::for_pair(self.channel, self.contact).to_string(), r.position.unwrap())
    }

    /// A new API key of the workspace with `role`.
    pub async fn key(&self, role: &str) -> String {
        let issued = self.app.post("/v1/api-keys", &self.ws.key, json!({"name": role, "role": role})).await.expect(201);
        issued.body["key"].as_str().unwrap().to_owned()
    }

    /// A new agent (`role`: admin, agent or viewer) and an API key bound to it: its id and key.
    pub async fn agent(&self, name: &str, role: &str) -> (String, String) {
        let email = format!("{}.{}@example.com", name.to_lowercase(), Uuid::now_v7().simple());
        let body = json!({"name": name, "email": email, "role": role});
        let id = self.app.post("/v1/agents", &self.ws.key, body).await.expect(201).id("agent_id");
        let body = json!({"name": format!("{name}'s key"), "agent_id": id});
        let issued = self.app.post("/v1/api-keys", &self.ws.key, body).await.expect(201);
        assert_eq!(issued.body["role"], role, "{}", issued.body);
        (id, issued.id("key"))
    }

    /// Sets an agent's availability with its own key.
    pub async fn availability(&self, agent: &str, key: &str, availability: &str) -> Answer {
        let path = format!("/v1/agents/{agent}/availability");
        self.app.post(&path, key, json!({"availability": availability})).await.expect(200)
    }

    pub async fn set(&self, conversation: &str, body: Value) -> Answer {
        self.app.post(&format!("/v1/conversations/{conversation}/status"), &self.ws.key, body).await
    }

    /// The conversation's row once the projections are at `position`.
    pub async fn row(&self, conversation: &str, position: &Value) -> Value {
        let list =
            self.app.get(&format!("/v1/conversations?min_position={position}"), &self.ws.key).await.expect(200).body;
        list["items"].as_array().unwrap().iter().find(|c| c["conversation_id"] == conversation).cloned().unwrap()
    }
}
