//! Reads of the read models. Lists are paged by id (UUIDv7, so in creation order): a page continues
//! after the last id of the previous one, which stays stable while new rows are inserted. The inbox
//! (conversations) is ordered by last activity instead, newest first: a page continues after the
//! activity and id of the row named by `after`.

use chrono::NaiveDate;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Value>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<Uuid>,
}

/// A filter on a list.
#[derive(Debug, Clone)]
pub enum Filter {
    /// `column = value` for a text column.
    Text(&'static str, String),
    /// `column = value` for a uuid column.
    Id(&'static str, Uuid),
    Bool(&'static str, bool),
    /// Contacts in a group.
    InGroup(Uuid),
    /// A conversation or contact carrying this label.
    Label(String),
    /// Contacts whose attribute `key` equals the string `value`.
    Attribute(String, String),
    /// Conversations with unread inbound messages.
    Unread,
    /// `column IS NULL`.
    Null(&'static str),
}

/// The lists there are: table and id column.
#[derive(Debug, Clone, Copy)]
pub enum List {
    Contacts,
    Groups,
    Templates,
    Channels,
    Conversations,
    Messages,
    Campaigns,
    Agents,
    Teams,
    Notes,
    CannedResponses,
}

/// Agents with their workload: open (or pending) conversations and those with unread messages.
const AGENTS_WITH_WORKLOAD: &str = "(SELECT a.*, w.open AS open_conversations, w.unread AS unread_conversations
    FROM rm_agents a CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE c.status IN ('open', 'pending')) AS open,
               count(*) FILTER (WHERE c.unread_count > 0 AND c.status <> 'resolved') AS unread
        FROM rm_conversations c WHERE c.workspace_id = a.workspace_id AND c.agent_id = a.agent_id) w)";

/// The inbox's order: last activity, newest first (a conversation without messages sorts last).
const ACTIVITY: &str = "coalesce(last_message_at, '-infinity'::timestamptz)";

impl List {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Contacts => ("rm_contacts", "contact_id"),
            Self::Groups => ("rm_groups", "group_id"),
            Self::Templates => ("rm_templates", "template_id"),
            Self::Channels => ("rm_channels", "channel_id"),
            Self::Conversations => ("rm_conversations", "conversation_id"),
            Self::Messages => ("rm_messages", "message_id"),
            Self::Campaigns => (crate::read_models::campaigns::WITH_PROGRESS, "campaign_id"),
            Self::Agents => (AGENTS_WITH_WORKLOAD, "agent_id"),
            Self::Teams => ("rm_teams", "team_id"),
            Self::Notes => ("rm_conversation_notes", "note_id"),
            Self::CannedResponses => ("rm_canned_responses", "canned_response_id"),
        }
    }

    fn by_activity(self) -> bool {
        matches!(self, Self::Conversations)
    }
}

/// A page of `list` in `workspace`, after `after`, at most `limit` rows, with `filters`.
pub async fn list(
    pool: &PgPool,
    list: List,
    workspace: Uuid,
    filters: &[Filter],
    after: Option<Uuid>,
    limit: i64,
) -> Result<Page, sqlx::Error> {
    let (table, id) = list.table();
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT to_jsonb(t) - 'workspace_id' FROM {table} t WHERE workspace_id = "));
    q.push_bind(workspace);
    match after {
        Some(a) if list.by_activity() => {
            q.push(format!(" AND ({ACTIVITY}, {id}) < (SELECT {ACTIVITY}, {id} FROM {table} WHERE workspace_id = "))
                .push_bind(workspace)
                .push(format!(" AND {id} = "))
                .push_bind(a)
                .push(")");
        }
        Some(a) => {
            q.push(format!(" AND {id} > ")).push_bind(a);
        }
        None => {}
    }
    for f in filters {
        match f {
            Filter::Text(col, v) => {
                q.push(format!(" AND {col} = ")).push_bind(v.clone());
            }
            Filter::Id(col, v) => {
                q.push(format!(" AND {col} = ")).push_bind(*v);
            }
            Filter::Bool(col, v) => {
                q.push(format!(" AND {col} = ")).push_bind(*v);
            }
            Filter::Label(l) => {
                q.push(" AND labels @> ARRAY[").push_bind(l.clone()).push("]::text[]");
            }
            Filter::InGroup(g) => {
                q.push(" AND group_ids @> ARRAY[").push_bind(*g).push("]::uuid[]");
            }
            Filter::Attribute(k, v) => {
                q.push(" AND attributes @> ").push_bind(serde_json::json!({ k.as_str(): v }));
            }
            Filter::Unread => {
                q.push(" AND unread_count > 0");
            }
            Filter::Null(col) => {
                q.push(format!(" AND {col} IS NULL"));
            }
        }
    }
    if list.by_activity() {
        q.push(format!(" ORDER BY {ACTIVITY} DESC, {id} DESC LIMIT ")).push_bind(limit + 1);
    } else {
        q.push(format!(" ORDER BY {id} LIMIT ")).push_bind(limit + 1);
    }
    let mut items: Vec<Value> = q.build_query_scalar().fetch_all(pool).await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().and_then(|v| v[id].as_str()).and_then(|s| Uuid::try_parse(s).ok())
    } else {
        None
    };
    Ok(Page { items, next })
}

/// One row of `list` by id.
pub async fn one(pool: &PgPool, list: List, workspace: Uuid, id: Uuid) -> Result<Option<Value>, sqlx::Error> {
    let (table, column) = list.table();
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) - 'workspace_id' FROM {table} t WHERE workspace_id = $1 AND {column} = $2"
    ))
    .bind(workspace)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Daily statistics between two days (inclusive).
pub async fn daily_stats(
    pool: &PgPool,
    workspace: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT to_jsonb(t) - 'workspace_id' FROM rm_daily_stats t
         WHERE workspace_id = $1 AND day BETWEEN $2 AND $3 AND messages <> 0
         ORDER BY day, direction, kind, status",
    )
    .bind(workspace)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// Usage metering between two days (inclusive): billing reports per channel, day and category.
pub async fn usage(pool: &PgPool, workspace: Uuid, from: NaiveDate, to: NaiveDate) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT to_jsonb(t) - 'workspace_id' FROM rm_usage t
         WHERE workspace_id = $1 AND day BETWEEN $2 AND $3
         ORDER BY day, channel_id, category",
    )
    .bind(workspace)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}
