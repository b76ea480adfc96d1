//! The `webhooks` projector: folds `webhook_endpoint.*` events into `webhook_endpoints`, and for
//! every other event inserts one `webhook_deliveries` row per enabled endpoint of its workspace that
//! subscribes to its type, in the same transaction as its checkpoint, so each event is enqueued for
//! each endpoint exactly once (the deliverer, `blazz_commands::outbound::deliver`, sends them at
//! least once). Endpoints see the events written after they were created or enabled, in log order.
//!
//! Deliveries are keyed for ordering by conversation: a message's events carry the conversation of
//! its `message.queued` (remembered in `webhook_message_conversations`), a conversation's events its
//! stream, other events their own stream. The deliverer sends one key's deliveries one at a time.
//!
//! `webhook_deliveries` is not among [`Projector::tables`]: the projector only inserts into it (ON
//! CONFLICT DO NOTHING) and the deliverer owns its state, so a rebuild re-derives endpoints without
//! sending anything twice.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::endpoint::{EndpointEvent, CATEGORY};
use blazz_domain::ids::ConversationId;
use blazz_domain::message::MessageEvent;
use blazz_domain::DomainEvent;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

#[derive(Debug)]
pub struct Webhooks;

/// SQL: whether the endpoint row `e` subscribes to the event type `ty` (an SQL expression): `*`,
/// the exact type, or its `<category>.*`.
pub fn subscribes_sql(ty: &str) -> String {
    format!("('*' = ANY(e.event_types) OR {ty} = ANY(e.event_types) OR split_part({ty}, '.', 1) || '.*' = ANY(e.event_types))")
}

/// The ordering key of a queued message's conversation.
fn conversation_key(id: ConversationId) -> String {
    format!("conversation-{}", id.as_uuid())
}

#[async_trait]
impl Projector for Webhooks {
    fn name(&self) -> &'static str {
        "webhooks"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["webhook_endpoints", "webhook_message_conversations"]
    }

    fn batchable(&self, event: &Applied) -> bool {
        !matches!(event.event, DomainEvent::Endpoint(_))
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let DomainEvent::Endpoint(e) = &a.event else {
            return self.apply_run(conn, &[a]).await.map(|mut v| v.pop().unwrap_or_default());
        };
        let (ws, id, at) = (a.record.workspace_id, a.aggregate_id(), a.record.recorded_at);
        let (sql, change) = match e {
            EndpointEvent::Created { url, event_types, description } => {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (endpoint_id, workspace_id, url, event_types, description, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(ws)
                .bind(url)
                .bind(event_types)
                .bind(description)
                .bind(at)
                .execute(conn)
                .await?;
                return Ok(vec![Change::upsert(
                    "webhook_endpoint",
                    id,
                    json!({ "url": url, "event_types": event_types, "enabled": true }),
                )]);
            }
            EndpointEvent::Updated { url, event_types, description } => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET url = $3, event_types = $4, description = COALESCE($5, description), updated_at = $6
                     WHERE workspace_id = $1 AND endpoint_id = $2",
                )
                .bind(ws)
                .bind(id)
                .bind(url)
                .bind(event_types)
                .bind(description)
                .bind(at)
                .execute(conn)
                .await?;
                return Ok(vec![Change::upsert("webhook_endpoint", id, json!({ "url": url, "event_types": event_types }))]);
            }
            EndpointEvent::Disabled { reason, .. } => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $3, updated_at = $4
                     WHERE workspace_id = $1 AND endpoint_id = $2",
                )
                .bind(ws)
                .bind(id)
                .bind(reason)
                .bind(at)
                .execute(conn)
                .await?;
                return Ok(vec![Change::upsert(
                    "webhook_endpoint",
                    id,
                    json!({ "enabled": false, "disabled_reason": reason }),
                )]);
            }
            EndpointEvent::Enabled { .. } => (
                "UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL, updated_at = $3
                 WHERE workspace_id = $1 AND endpoint_id = $2",
                Change::upsert("webhook_endpoint", id, json!({ "enabled": true })),
            ),
            EndpointEvent::SecretRotated { .. } => (
                "UPDATE webhook_endpoints SET updated_at = $3 WHERE workspace_id = $1 AND endpoint_id = $2",
                Change::upsert("webhook_endpoint", id, json!({ "secret_rotated_at": at })),
            ),
            EndpointEvent::Deleted => (
                "UPDATE webhook_endpoints SET deleted = true, updated_at = $3 WHERE workspace_id = $1 AND endpoint_id = $2",
                Change::delete("webhook_endpoint", id),
            ),
        };
        sqlx::query(sql).bind(ws).bind(id).bind(at).execute(conn).await?;
        Ok(vec![change])
    }

    /// Enqueues a run of events with three statements at most; a run of workspaces without
    /// endpoints costs one lookup.
    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        let out = vec![vec![]; run.len()];
        let workspaces: Vec<Uuid> =
            run.iter().map(|a| a.record.workspace_id).collect::<HashSet<_>>().into_iter().collect();
        let with_endpoints: HashSet<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT workspace_id FROM webhook_endpoints WHERE workspace_id = ANY($1) AND enabled AND NOT deleted",
        )
        .bind(&workspaces)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        let run: Vec<&Applied> = run
            .iter()
            .copied()
            .filter(|a| with_endpoints.contains(&a.record.workspace_id) && !a.record.stream_id.starts_with(CATEGORY))
            .collect();
        if run.is_empty() {
            return Ok(out);
        }

        // Messages queued in this run name their conversation; the others' were remembered.
        let mut keys: HashMap<&str, String> = HashMap::new();
        for a in &run {
            if let DomainEvent::Message(MessageEvent::Queued { channel_id, contact_id, .. }) = &a.event {
                keys.insert(&a.record.stream_id, conversation_key(ConversationId::for_pair(*channel_id, *contact_id)));
            }
        }
        if !keys.is_empty() {
            let (streams, orders): (Vec<&str>, Vec<&str>) = keys.iter().map(|(s, k)| (*s, k.as_str())).unzip();
            sqlx::query(
                "INSERT INTO webhook_message_conversations (message_stream, order_key)
                 SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&streams)
            .bind(&orders)
            .execute(&mut *conn)
            .await?;
        }
        let unknown: Vec<&str> = run
            .iter()
            .filter(|a| matches!(a.event, DomainEvent::Message(_)) && !keys.contains_key(a.record.stream_id.as_str()))
            .map(|a| a.record.stream_id.as_str())
            .collect();
        let remembered: HashMap<String, String> = if unknown.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as(
                "SELECT message_stream, order_key FROM webhook_message_conversations WHERE message_stream = ANY($1)",
            )
            .bind(&unknown)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect()
        };

        let mut cols: (Vec<Uuid>, Vec<Uuid>, Vec<i64>, Vec<&str>, Vec<i64>, Vec<&str>, Vec<&str>, Vec<DateTime<Utc>>) =
            Default::default();
        for a in &run {
            let r = &a.record;
            let stream = r.stream_id.as_str();
            let key = keys.get(stream).or_else(|| remembered.get(stream)).map_or(stream, String::as_str);
            cols.0.push(r.workspace_id);
            cols.1.push(r.event_id);
            cols.2.push(r.position);
            cols.3.push(stream);
            cols.4.push(r.stream_version as i64);
            cols.5.push(&r.event_type);
            cols.6.push(key);
            cols.7.push(r.recorded_at);
        }
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries (delivery_id, endpoint_id, workspace_id, event_id, position, stream_id,
                                             stream_version, event_type, order_key, recorded_at, next_attempt_at)
             SELECT gen_random_uuid(), e.endpoint_id, ev.ws, ev.event_id, ev.position, ev.stream, ev.version, ev.type,
                    ev.key, ev.at, now()
             FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[],
                         $8::timestamptz[]) AS ev(ws, event_id, position, stream, version, type, key, at)
             JOIN webhook_endpoints e ON e.workspace_id = ev.ws AND e.enabled AND NOT e.deleted AND {}
             ORDER BY ev.position
             ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            subscribes_sql("ev.type")
        ))
        .bind(&cols.0)
        .bind(&cols.1)
        .bind(&cols.2)
        .bind(&cols.3)
        .bind(&cols.4)
        .bind(&cols.5)
        .bind(&cols.6)
        .bind(&cols.7)
        .execute(&mut *conn)
        .await?;
        Ok(out)
    }
}
