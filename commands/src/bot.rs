//! The bot hand-off: a workspace's bot (any OpenAI-compatible chat-completions endpoint: base URL,
//! model, key, system prompt) may answer conversations in `pending`. Given the conversation's recent
//! messages it either answers (sent as a reply, under the 24-hour window like any free-form
//! message) or hands the conversation to a person: on a hand-off keyword in the customer's text
//! (the model is not asked), on an explicit `handoff` tool call, on an answer whose mean token
//! probability is below `min_confidence`, or when the endpoint fails. Handing off reopens the
//! conversation (`open`) with a private note saying why.
//!
//! The configuration is kept like channel credentials, outside the log (`bot_configs`, the key
//! sealed with `BLAZZ_SECRET_KEY`). Turns are runs of kind `bot` in `automation_runs`, enqueued by
//! the `automation` projector for each inbound message of a workspace with an enabled bot and
//! performed by the automation worker, which checks the conversation is pending at that moment.

use crate::credentials::{CredentialError, Keyring, Secret};
use crate::outbound::guard::{self, GuardedResolver};
use blazz_domain::values::bounded_text;
use blazz_domain::DomainError;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Most hand-off keywords.
pub const MAX_KEYWORDS: usize = 20;
/// Most messages of history given to the model.
pub const MAX_HISTORY: i32 = 50;
/// Most bot turns per conversation in any hour.
pub const MAX_TURNS_PER_HOUR: i64 = 30;

/// A bot as configured through the API.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BotSettings {
    /// The endpoint's base URL; requests go to `<base_url>/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …`; kept sealed, never shown again. Absent: unchanged.
    #[serde(default)]
    pub api_key: Option<String>,
    pub system_prompt: String,
    /// Words in the customer's text that hand the conversation to a person at once.
    #[serde(default)]
    pub handoff_keywords: Vec<String>,
    /// 0–1: answers below this mean token probability go to a person (needs `logprobs`).
    #[serde(default)]
    pub min_confidence: Option<f64>,
    /// Recent messages of the conversation given to the model (0–50, default 10).
    #[serde(default = "default_history")]
    pub history: i32,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_history() -> i32 {
    10
}

fn default_enabled() -> bool {
    true
}

impl BotSettings {
    /// The settings as stored: every field checked.
    pub fn validated(self) -> Result<Self, DomainError> {
        let base_url = blazz_domain::endpoint::endpoint_url(&self.base_url)
            .map_err(|_| DomainError::invalid("base_url", "must be an http(s) URL with a host"))?;
        let model = bounded_text("model", &self.model, 200)?;
        let system_prompt = bounded_text("system_prompt", &self.system_prompt, 20_000)?;
        let api_key = self.api_key.as_deref().map(|k| bounded_text("api_key", k, 1_000)).transpose()?;
        if self.handoff_keywords.len() > MAX_KEYWORDS {
            return Err(DomainError::invalid("handoff_keywords", format!("at most {MAX_KEYWORDS}")));
        }
        let handoff_keywords = self
            .handoff_keywords
            .iter()
            .map(|k| bounded_text("handoff_keywords", k, 100).map(|k| k.to_lowercase()))
            .collect::<Result<_, _>>()?;
        if self.min_confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
            return Err(DomainError::invalid("min_confidence", "between 0 and 1"));
        }
        if !(0..=MAX_HISTORY).contains(&self.history) {
            return Err(DomainError::invalid("history", format!("between 0 and {MAX_HISTORY}")));
        }
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            model,
            api_key,
            system_prompt,
            handoff_keywords,
            ..self
        })
    }
}

/// A stored bot, its key opened.
#[derive(Debug, Clone)]
pub struct BotConfig {
    pub bot_id: Uuid,
    pub base_url: String,
    pub model: String,
    pub system_prompt: String,
    pub api_key: Option<Secret>,
    pub handoff_keywords: Vec<String>,
    pub min_confidence: Option<f64>,
    pub history: i32,
    pub enabled: bool,
}

/// What the bot does with one customer message.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    Reply(String),
    Handoff(String),
}

/// The hand-off keyword in `text`, if any (whole words, any case).
pub fn handoff_keyword(cfg: &BotConfig, text: &str) -> Option<String> {
    let words: Vec<String> = text.to_lowercase().split(|c: char| !c.is_alphanumeric()).map(str::to_owned).collect();
    cfg.handoff_keywords.iter().find(|k| words.iter().any(|w| w == *k)).cloned()
}

/// The turn a chat-completions answer stands for.
pub fn turn_of(cfg: &BotConfig, answer: &Value) -> Turn {
    let message = &answer["choices"][0]["message"];
    let tools = message["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default();
    if let Some(call) = tools.iter().find(|t| t["function"]["name"] == "handoff") {
        let args: Value =
            call["function"]["arguments"].as_str().and_then(|a| serde_json::from_str(a).ok()).unwrap_or_default();
        let reason = args["reason"].as_str().unwrap_or("the bot asked for a person");
        return Turn::Handoff(format!("the bot handed off: {reason}"));
    }
    let text = message["content"].as_str().map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Turn::Handoff("the bot gave no answer".into());
    }
    if let Some(min) = cfg.min_confidence {
        let logprobs: Vec<f64> = answer["choices"][0]["logprobs"]["content"]
            .as_array()
            .map(|c| c.iter().filter_map(|t| t["logprob"].as_f64()).collect())
            .unwrap_or_default();
        if logprobs.is_empty() {
            return Turn::Handoff("the bot's answer had no token probabilities to judge it by".into());
        }
        let confidence = (logprobs.iter().sum::<f64>() / logprobs.len() as f64).exp();
        if confidence < min {
            return Turn::Handoff(format!("the bot's confidence {confidence:.2} is below {min:.2}"));
        }
    }
    Turn::Reply(text.chars().take(4096).collect())
}

/// Bots of every workspace; cheap to clone.
#[derive(Debug, Clone)]
pub struct Bots {
    pool: PgPool,
    keys: Keyring,
    client: reqwest::Client,
    allow_private: bool,
    timeout: Duration,
}

type Row = (Uuid, String, String, String, Option<Vec<u8>>, Vec<String>, Option<f64>, i32, bool);

impl Bots {
    /// `allow_private`: the endpoint may be on a private address (the outbound webhooks' SSRF guard
    /// and setting); `timeout`: for one model call.
    pub fn new(pool: PgPool, keys: Keyring, allow_private: bool, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .user_agent(concat!("Blazz-Bot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { pool, keys, client, allow_private, timeout })
    }

    /// Stores the workspace's bot (a new `bot_id`: turns enqueued for an earlier one are skipped);
    /// keeps the stored key when none is given.
    pub async fn put(&self, workspace: Uuid, s: BotSettings) -> Result<Uuid, CredentialError> {
        let id = Uuid::now_v7();
        let sealed = s.api_key.as_ref().map(|k| self.keys.seal(id.as_bytes(), k.as_bytes()));
        let kept: Option<(Uuid, Option<Vec<u8>>)> = if sealed.is_none() {
            sqlx::query_as("SELECT bot_id, sealed_key FROM bot_configs WHERE workspace_id = $1")
                .bind(workspace)
                .fetch_optional(&self.pool)
                .await?
        } else {
            None
        };
        // A kept key is re-sealed under the new id (the id is its associated data).
        let sealed = match (sealed, kept) {
            (Some(s), _) => Some(s),
            (None, Some((old, Some(k)))) => {
                let plain = self.keys.open(old.as_bytes(), &k).ok_or(CredentialError::CannotOpen(old))?;
                Some(self.keys.seal(id.as_bytes(), &plain))
            }
            (None, _) => None,
        };
        sqlx::query(
            "INSERT INTO bot_configs (workspace_id, bot_id, base_url, model, system_prompt, sealed_key, handoff_keywords,
                                      min_confidence, history, enabled, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
             ON CONFLICT (workspace_id) DO UPDATE SET bot_id = $2, base_url = $3, model = $4, system_prompt = $5,
                 sealed_key = $6, handoff_keywords = $7, min_confidence = $8, history = $9, enabled = $10, updated_at = now()",
        )
        .bind(workspace)
        .bind(id)
        .bind(&s.base_url)
        .bind(&s.model)
        .bind(&s.system_prompt)
        .bind(sealed)
        .bind(&s.handoff_keywords)
        .bind(s.min_confidence)
        .bind(s.history)
        .bind(s.enabled)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn get(&self, workspace: Uuid) -> Result<Option<BotConfig>, CredentialError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT bot_id, base_url, model, system_prompt, sealed_key, handoff_keywords, min_confidence, history, enabled
             FROM bot_configs WHERE workspace_id = $1",
        )
        .bind(workspace)
        .fetch_optional(&self.pool)
        .await?;
        let Some((bot_id, base_url, model, system_prompt, sealed, handoff_keywords, min_confidence, history, enabled)) =
            row
        else {
            return Ok(None);
        };
        let api_key = match sealed {
            Some(s) => {
                let plain = self.keys.open(bot_id.as_bytes(), &s).ok_or(CredentialError::CannotOpen(bot_id))?;
                Some(Secret::new(String::from_utf8(plain).map_err(|_| CredentialError::CannotOpen(bot_id))?))
            }
            None => None,
        };
        Ok(Some(BotConfig {
            bot_id,
            base_url,
            model,
            system_prompt,
            api_key,
            handoff_keywords,
            min_confidence,
            history,
            enabled,
        }))
    }

    /// Removes the workspace's bot; answers whether there was one.
    pub async fn delete(&self, workspace: Uuid) -> Result<bool, CredentialError> {
        let done =
            sqlx::query("DELETE FROM bot_configs WHERE workspace_id = $1").bind(workspace).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Re-seals every bot key not sealed with the current key; returns how many.
    pub async fn reseal_all(&self) -> Result<u64, CredentialError> {
        let rows: Vec<(Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT bot_id, sealed_key FROM bot_configs WHERE sealed_key IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        let mut n = 0;
        for (id, sealed) in rows.into_iter().filter(|(_, s)| !self.keys.is_current(s)) {
            let plain = self.keys.open(id.as_bytes(), &sealed).ok_or(CredentialError::CannotOpen(id))?;
            sqlx::query("UPDATE bot_configs SET sealed_key = $2 WHERE bot_id = $1 AND sealed_key = $3")
                .bind(id)
                .bind(self.keys.seal(id.as_bytes(), &plain))
                .bind(&sealed)
                .execute(&self.pool)
                .await?;
            n += 1;
        }
        Ok(n)
    }

    /// Asks the model about the customer's `text` after `history` (`(role, content)`, oldest
    /// first); any failure of the endpoint is a hand-off.
    pub async fn ask(&self, cfg: &BotConfig, history: &[(String, String)], text: &str) -> Turn {
        let url = format!("{}/chat/completions", cfg.base_url);
        if let Err(e) = guard::check_url(&url, self.allow_private) {
            return Turn::Handoff(format!("the bot endpoint is refused: {e}"));
        }
        let mut messages = vec![json!({"role": "system", "content": cfg.system_prompt})];
        messages.extend(history.iter().map(|(role, content)| json!({"role": role, "content": content})));
        messages.push(json!({"role": "user", "content": text}));
        let body = json!({
            "model": cfg.model,
            "messages": messages,
            "tools": [{"type": "function", "function": {
                "name": "handoff",
                "description": "Hand the conversation to a human agent when you cannot or should not answer.",
                "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}}
            }}],
            "logprobs": cfg.min_confidence.is_some(),
        });
        let mut request = self.client.post(&url).json(&body);
        if let Some(key) = &cfg.api_key {
            request = request.bearer_auth(key.expose());
        }
        let answer = match request.send().await {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.map_err(|e| format!("unreadable answer: {e}")),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) => Err(guard::describe(&e, self.timeout)),
        };
        match answer {
            Ok(a) => turn_of(cfg, &a),
            Err(e) => Turn::Handoff(format!("the bot endpoint failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min: Option<f64>) -> BotConfig {
        BotConfig {
            bot_id: Uuid::nil(),
            base_url: "http://x".into(),
            model: "m".into(),
            system_prompt: "p".into(),
            api_key: None,
            handoff_keywords: vec!["agent".into(), "manusia".into()],
            min_confidence: min,
            history: 10,
            enabled: true,
        }
    }

    #[test]
    fn answers_tool_calls_and_confidence_decide_the_turn() {
        let answer = |content: Value, extra: Value| {
            let mut a = json!({"choices": [{"message": {"role": "assistant", "content": content}}]});
            for (k, v) in extra.as_object().unwrap() {
                a["choices"][0][k] = v.clone();
            }
            a
        };
        assert_eq!(turn_of(&cfg(None), &answer(json!("Buka jam 9"), json!({}))), Turn::Reply("Buka jam 9".into()));
        assert!(matches!(turn_of(&cfg(None), &answer(json!(""), json!({}))), Turn::Handoff(_)));
        let call = json!({"choices": [{"message": {"content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "handoff", "arguments": "{\"reason\":\"refund\"}"}}]}}]});
        assert_eq!(turn_of(&cfg(None), &call), Turn::Handoff("the bot handed off: refund".into()));
        let sure =
            json!({"logprobs": {"content": [{"token": "a", "logprob": -0.01}, {"token": "b", "logprob": -0.02}]}});
        let unsure = json!({"logprobs": {"content": [{"token": "a", "logprob": -2.0}]}});
        assert!(matches!(turn_of(&cfg(Some(0.8)), &answer(json!("ok"), sure)), Turn::Reply(_)));
        assert!(
            matches!(turn_of(&cfg(Some(0.8)), &answer(json!("ok"), unsure)), Turn::Handoff(r) if r.contains("0.14"))
        );
        assert!(matches!(turn_of(&cfg(Some(0.8)), &answer(json!("ok"), json!({}))), Turn::Handoff(_)));
        assert!(matches!(turn_of(&cfg(None), &json!({"garbage": true})), Turn::Handoff(_)));
    }

    #[test]
    fn keywords_hand_off_on_whole_words() {
        assert_eq!(handoff_keyword(&cfg(None), "Mau bicara dengan MANUSIA!"), Some("manusia".into()));
        assert_eq!(handoff_keyword(&cfg(None), "agents of shield"), None);
    }
}
