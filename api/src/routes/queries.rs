//! Queries of the read models. Every list takes `after` (the `next_after` of the previous page) and
//! `limit` (1–500, default 50); every query takes `min_position`: the position a command answered
//! with. The query then waits (up to 5 s) until the projections have applied it, or answers 503
//! `not_yet_consistent`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use blazz_domain::conversation::{ConversationStatus, Priority};
use blazz_domain::role::Action;
use blazz_projections::queries::{self, Filter, List, Page};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// How long a query waits for the projections to reach `min_position`.
pub const CONSISTENCY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
pub struct Params {
    after: Option<Uuid>,
    limit: Option<i64>,
    min_position: Option<i64>,
    // Filters (each list uses those that apply to it).
    group_id: Option<Uuid>,
    opted_out: Option<bool>,
    /// `key:value`
    attribute: Option<String>,
    status: Option<String>,
    label: Option<String>,
    unread: Option<bool>,
    /// Conversations assigned to this agent.
    assignee: Option<Uuid>,
    team: Option<Uuid>,
    /// `true`: conversations without an agent.
    unassigned: Option<bool>,
    priority: Option<String>,
    /// Inbox report rows: `agent` (default; per team and agent), `team` or `workspace`.
    by: Option<String>,
    channel_id: Option<Uuid>,
    contact_id: Option<Uuid>,
    conversation_id: Option<Uuid>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// Waits until the projections have applied the event at `min_position`. A position of another
/// workspace's event answers like one that does not exist: it tells nothing about other tenants.
async fn consistent(s: &AppState, caller: &Caller, min_position: Option<i64>) -> Result<(), ApiError> {
    let Some(position) = min_position else {
        return Ok(());
    };
    let workspace = caller.workspace_id();
    let cursor = blazz_projections::progress::cursor_of(&s.pool, workspace, position)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::bad_request("unknown_position", "min_position is not a position of the log"))?;
    if s.progress.wait_for(workspace, cursor, CONSISTENCY_WAIT).await {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_yet_consistent",
            "the read models have not reached min_position yet; retry",
        ))
    }
}

fn limit(l: Option<i64>) -> Result<i64, ApiError> {
    match l.unwrap_or(50) {
        n @ 1..=500 => Ok(n),
        _ => Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 500")),
    }
}

fn page_json(p: Page) -> Json<Value> {
    Json(json!({ "items": p.items, "next_after": p.next }))
}

async fn list(
    s: &AppState,
    caller: &Caller,
    which: List,
    p: &Params,
    filters: Vec<Filter>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let limit = limit(p.limit)?;
    consistent(s, caller, p.min_position).await?;
    let page = queries::list(&s.pool, which, caller.workspace_id(), &filters, p.after, limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(page_json(page))
}

async fn one(
    s: &AppState,
    caller: &Caller,
    which: List,
    id: Uuid,
    min_position: Option<i64>,
    what: &str,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    consistent(s, caller, min_position).await?;
    queries::one(&s.pool, which, caller.workspace_id(), id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(what))
}

pub async fn contacts(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let mut f = vec![];
    if let Some(g) = p.group_id {
        f.push(Filter::InGroup(g));
    }
    if let Some(o) = p.opted_out {
        f.push(Filter::Bool("opted_out", o));
    }
    if let Some(a) = &p.attribute {
        let (k, v) =
            a.split_once(':').ok_or_else(|| ApiError::bad_request("invalid_query", "attribute must be key:value"))?;
        f.push(Filter::Attribute(k.to_owned(), v.to_owned()));
    }
    if let Some(l) = &p.label {
        f.push(Filter::Label(blazz_domain::label::label(l)?));
    }
    list(&s, &caller, List::Contacts, &p, f).await
}

pub async fn contact(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Contacts, id, p.min_position, "contact").await
}

pub async fn groups(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Groups, &p, vec![]).await
}

pub async fn group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Groups, id, p.min_position, "group").await
}

pub async fn templates(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let f = p.status.clone().map(|st| Filter::Text("status", st.to_ascii_uppercase())).into_iter().collect();
    list(&s, &caller, List::Templates, &p, f).await
}

pub async fn template(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Templates, id, p.min_position, "template").await
}

pub async fn channels(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Channels, &p, vec![]).await
}

pub async fn channel(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Channels, id, p.min_position, "channel").await
}

pub async fn conversations(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let mut f = vec![];
    if p.unread == Some(true) {
        f.push(Filter::Unread);
    }
    if let Some(c) = p.channel_id {
        f.push(Filter::Id("channel_id", c));
    }
    if let Some(c) = p.contact_id {
        f.push(Filter::Id("contact_id", c));
    }
    if let Some(st) = &p.status {
        f.push(Filter::Text("status", ConversationStatus::parse(st)?.as_str().to_owned()));
    }
    if let Some(l) = &p.label {
        f.push(Filter::Label(blazz_domain::label::label(l)?));
    }
    if let Some(a) = p.assignee {
        f.push(Filter::Id("agent_id", a));
    }
    if let Some(t) = p.team {
        f.push(Filter::Id("team_id", t));
    }
    if p.unassigned == Some(true) {
        f.push(Filter::Null("agent_id"));
    }
    if let Some(pr) = &p.priority {
        f.push(Filter::Text("priority", Priority::parse(pr)?.as_str().to_owned()));
    }
    list(&s, &caller, List::Conversations, &p, f).await
}

pub async fn conversation(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Conversations, id, p.min_position, "conversation").await
}

/// `GET /v1/conversations/{id}/notes`: its private notes, oldest first.
pub async fn notes(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Notes, &p, vec![Filter::Id("conversation_id", id)]).await
}

/// `GET /v1/agents`: agents with their open and unread conversation counts.
pub async fn agents(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Agents, &p, vec![]).await
}

pub async fn agent(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Agents, id, p.min_position, "agent").await
}

pub async fn teams(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Teams, &p, vec![]).await
}

pub async fn team(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Teams, id, p.min_position, "team").await
}

pub async fn messages(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let mut f = vec![];
    if let Some(st) = &p.status {
        f.push(Filter::Text("status", st.to_ascii_lowercase()));
    }
    if let Some(c) = p.conversation_id {
        f.push(Filter::Id("conversation_id", c));
    }
    if let Some(c) = p.contact_id {
        f.push(Filter::Id("contact_id", c));
    }
    list(&s, &caller, List::Messages, &p, f).await
}

pub async fn message(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Messages, id, p.min_position, "message").await
}

/// Day-bucketed statistics: `from`..`to` (default the last 30 days), after `min_position`.
async fn per_day<F, Fut>(s: &AppState, caller: &Caller, p: &Params, rows: F) -> Result<Json<Value>, ApiError>
where
    F: FnOnce(chrono::NaiveDate, chrono::NaiveDate) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Value>, sqlx::Error>>,
{
    caller.require(Action::Read)?;
    consistent(s, caller, p.min_position).await?;
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (p.from.unwrap_or(today - chrono::Days::new(30)), p.to.unwrap_or(today));
    // Dates PostgreSQL's types hold (chrono's reach further, to years before 4713 BC).
    use chrono::Datelike;
    if !(1970..=9999).contains(&from.year()) || !(1970..=9999).contains(&to.year()) || from > to {
        return Err(ApiError::bad_request("invalid_query", "from and to are days of the years 1970-9999, from <= to"));
    }
    let rows = rows(from, to).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({ "items": rows })))
}

pub async fn daily_stats(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    per_day(&s, &caller, &p, |from, to| queries::daily_stats(&s.pool, caller.workspace_id(), from, to)).await
}

/// `GET /v1/usage`: billing reports per channel, day and pricing category.
pub async fn usage(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    per_day(&s, &caller, &p, |from, to| queries::usage(&s.pool, caller.workspace_id(), from, to)).await
}

pub async fn campaigns(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let mut f = vec![];
    if let Some(st) = p.status.clone() {
        f.push(Filter::Text("status", st));
    }
    list(&s, &caller, List::Campaigns, &p, f).await
}

pub async fn campaign(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Campaigns, id, p.min_position, "campaign").await
}

pub async fn canned_responses(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::CannedResponses, &p, vec![]).await
}

/// `GET /v1/reports/inbox?from=&to=&by=agent|team|workspace`: per UTC day (and team and agent)
/// conversations opened and resolved, first response and resolution times (median, p90), messages sent.
pub async fn inbox_report(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    use blazz_projections::read_models::reports::{self, GroupBy};
    let by = match p.by.as_deref() {
        None | Some("agent") => GroupBy::Agent,
        Some("team") => GroupBy::Team,
        Some("workspace") => GroupBy::Workspace,
        Some(_) => return Err(ApiError::bad_request("invalid_query", "by must be agent, team or workspace")),
    };
    per_day(&s, &caller, &p, |from, to| reports::inbox(&s.pool, caller.workspace_id(), from, to, by)).await
}

/// `GET /v1/reports/campaigns/{id}`: delivery and read rates and replies within 24 hours.
pub async fn campaign_report(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    consistent(&s, &caller, p.min_position).await?;
    blazz_projections::read_models::reports::campaign(&s.pool, caller.workspace_id(), id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("campaign"))
}
