//! WebhookEndpoint: where a workspace is told of its events (Standard Webhooks). The endpoint's
//! URL, subscribed event types and whether it is enabled live here; its signing secret never enters
//! the log (it is sealed outside it, like channel credentials) and `secret_rotated` only records
//! that it changed. Deliveries are driven from the log by the `webhooks` projector.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::event::DomainEvent;
use crate::values::{bounded_text, storable};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest endpoint URL.
pub const MAX_URL_CHARS: usize = 2048;
/// Most event type patterns one endpoint subscribes to.
pub const MAX_PATTERNS: usize = 100;
/// The category of these streams: its events are never delivered to endpoints (they would tell a
/// receiver of itself, and a loop of changes to endpoints is no one's business but the workspace's).
pub const CATEGORY: &str = "webhook_endpoint";

/// An endpoint URL as stored: absolute `http`/`https`, with a host, no credentials, no fragment.
pub fn endpoint_url(input: &str) -> Result<String, DomainError> {
    let raw = bounded_text("url", input, MAX_URL_CHARS)?;
    let url = url::Url::parse(&raw).map_err(|e| DomainError::invalid("url", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DomainError::invalid("url", "must be http or https"));
    }
    if url.host_str().map_or(true, str::is_empty) {
        return Err(DomainError::invalid("url", "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DomainError::invalid("url", "must not carry credentials (the signature authenticates us)"));
    }
    if url.fragment().is_some() {
        return Err(DomainError::invalid("url", "must not have a fragment"));
    }
    Ok(url.to_string())
}

/// Subscribed event types as stored: each `*` (everything), `<category>.*` or an exact event type
/// this code writes, sorted and without duplicates. Endpoint events themselves cannot be subscribed.
pub fn event_patterns(input: &[String]) -> Result<Vec<String>, DomainError> {
    if input.is_empty() {
        return Err(DomainError::invalid("event_types", "subscribe to at least one type (\"*\" for all)"));
    }
    if input.len() > MAX_PATTERNS {
        return Err(DomainError::invalid("event_types", format!("at most {MAX_PATTERNS} patterns")));
    }
    let mut out = Vec::with_capacity(input.len());
    for p in input {
        storable("event_types", p)?;
        let p = p.trim();
        let known = match p.strip_suffix(".*") {
            _ if p == "*" => true,
            Some(category) => {
                category != CATEGORY && DomainEvent::types().any(|t| t.split('.').next() == Some(category))
            }
            None => !p.starts_with(CATEGORY) && DomainEvent::types().any(|t| t == p),
        };
        if !known {
            return Err(DomainError::invalid(
                "event_types",
                format!("{p:?} is not an event type, a \"<category>.*\" of one, or \"*\" (see docs/events.md)"),
            ));
        }
        out.push(p.to_owned());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub created: bool,
    pub deleted: bool,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub enum EndpointCommand {
    Create {
        url: String,
        event_types: Vec<String>,
        description: Option<String>,
    },
    /// Changes what is given; `None` keeps it.
    Update {
        url: Option<String>,
        event_types: Option<Vec<String>>,
        description: Option<String>,
    },
    Disable {
        reason: String,
        now: DateTime<Utc>,
    },
    Enable {
        now: DateTime<Utc>,
    },
    RotateSecret {
        now: DateTime<Utc>,
    },
    Delete,
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum EndpointEvent {
        #[serde(rename = "webhook_endpoint.created")]
        Created {
            url: String,
            event_types: Vec<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            description: Option<String>,
        },
        /// The endpoint's URL, types and description after the change.
        #[serde(rename = "webhook_endpoint.updated")]
        Updated {
            url: String,
            event_types: Vec<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            description: Option<String>,
        },
        /// By a caller, or by the deliverer (the receiver answered 410 Gone, or failed for days).
        #[serde(rename = "webhook_endpoint.disabled")]
        Disabled { reason: String, at: DateTime<Utc> },
        #[serde(rename = "webhook_endpoint.enabled")]
        Enabled { at: DateTime<Utc> },
        /// A new signing secret; the previous one still signs for a day (the secret is not here).
        #[serde(rename = "webhook_endpoint.secret_rotated")]
        SecretRotated { at: DateTime<Utc> },
        #[serde(rename = "webhook_endpoint.deleted")]
        Deleted,
    }
}

fn description(input: Option<&str>) -> Result<Option<String>, DomainError> {
    input.map(|d| bounded_text("description", d, 500)).transpose()
}

impl Aggregate for WebhookEndpoint {
    const CATEGORY: &'static str = CATEGORY;
    type Command = EndpointCommand;
    type Event = EndpointEvent;

    fn decide(&self, command: EndpointCommand) -> Result<Vec<EndpointEvent>, DomainError> {
        match command {
            EndpointCommand::Create { url, event_types, description: d } => {
                if self.created {
                    return Err(DomainError::AlreadyExists("webhook endpoint"));
                }
                Ok(vec![EndpointEvent::Created {
                    url: endpoint_url(&url)?,
                    event_types: event_patterns(&event_types)?,
                    description: description(d.as_deref())?,
                }])
            }
            _ if !self.created || self.deleted => Err(DomainError::NotFound("webhook endpoint")),
            EndpointCommand::Update { url, event_types, description: d } => {
                let url = url.as_deref().map(endpoint_url).transpose()?.unwrap_or_else(|| self.url.clone());
                let types = event_types.as_deref().map(event_patterns).transpose()?;
                let event_types = types.unwrap_or_else(|| self.event_types.clone());
                let d = description(d.as_deref())?;
                if url == self.url && event_types == self.event_types && d.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![EndpointEvent::Updated { url, event_types, description: d }])
            }
            EndpointCommand::Disable { reason, now } => {
                let reason = bounded_text("reason", &reason, 1000)?;
                Ok(if self.enabled { vec![EndpointEvent::Disabled { reason, at: now }] } else { vec![] })
            }
            EndpointCommand::Enable { now } => {
                Ok(if self.enabled { vec![] } else { vec![EndpointEvent::Enabled { at: now }] })
            }
            EndpointCommand::RotateSecret { now } => Ok(vec![EndpointEvent::SecretRotated { at: now }]),
            EndpointCommand::Delete => Ok(vec![EndpointEvent::Deleted]),
        }
    }

    fn evolve(mut self, event: &EndpointEvent) -> Self {
        match event {
            EndpointEvent::Created { url, event_types, .. } => {
                self.created = true;
                self.enabled = true;
                self.url = url.clone();
                self.event_types = event_types.clone();
            }
            EndpointEvent::Updated { url, event_types, .. } => {
                self.url = url.clone();
                self.event_types = event_types.clone();
            }
            EndpointEvent::Disabled { .. } => self.enabled = false,
            EndpointEvent::Enabled { .. } => self.enabled = true,
            EndpointEvent::SecretRotated { .. } => {}
            EndpointEvent::Deleted => self.deleted = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn urls_must_be_absolute_web_addresses_without_credentials() {
        assert_eq!(endpoint_url(" https://hooks.example.com/in?x=1 ").unwrap(), "https://hooks.example.com/in?x=1");
        for bad in
            ["ftp://x.example", "/relative", "https://user:pw@x.example/", "https://x.example/#f", "nota url", ""]
        {
            assert_eq!(endpoint_url(bad).map_err(|e| e.code()), Err("validation_failed"), "{bad}");
        }
    }

    #[test]
    fn patterns_name_known_types_or_categories_and_never_endpoint_events() {
        let ok = event_patterns(&strings(&["message.*", "contact.created", "*", "message.*"])).unwrap();
        assert_eq!(ok, strings(&["*", "contact.created", "message.*"]));
        for bad in ["message.exploded", "nothing.*", "webhook_endpoint.*", "webhook_endpoint.created", "mess\0age.*"] {
            assert!(event_patterns(&strings(&[bad])).is_err(), "{bad}");
        }
        assert!(event_patterns(&[]).is_err());
    }

    #[test]
    fn an_endpoint_is_disabled_and_enabled_once_each_and_gone_after_deletion() {
        let now = Utc::now();
        let create = EndpointCommand::Create {
            url: "https://x.example/h".into(),
            event_types: strings(&["*"]),
            description: None,
        };
        let events = WebhookEndpoint::default().decide(create).unwrap();
        let e = events.iter().fold(WebhookEndpoint::default(), |s, e| s.evolve(e));
        assert!(e.enabled);
        let disabled = e.decide(EndpointCommand::Disable { reason: "410 Gone".into(), now }).unwrap();
        assert_eq!(disabled.len(), 1);
        let e = e.evolve(&disabled[0]);
        assert!(e.decide(EndpointCommand::Disable { reason: "again".into(), now }).unwrap().is_empty());
        assert_eq!(e.decide(EndpointCommand::Enable { now }).unwrap(), vec![EndpointEvent::Enabled { at: now }]);
        let e = e.evolve(&EndpointEvent::Deleted);
        assert!(matches!(e.decide(EndpointCommand::Enable { now }), Err(DomainError::NotFound(_))));
    }
}
