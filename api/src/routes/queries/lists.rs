//! The lists and single rows of the read models.

use super::{list, one, Params};
use super::{one_as_of, AsOfParam, AtPosition, Paging};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use blazz_domain::conversation::{ConversationStatus, Priority};
use blazz_projections::queries::{Filter, List};
use serde_json::Value;
use uuid::Uuid;

#[utoipa::path(
    get,
    path = "/v1/contacts",
    tag = "contacts",
    params(Paging, ("group_id" = Option<Uuid>, Query, description = "Members of this group."), ("opted_out" = Option<bool>, Query, description = "Opted out or not."), ("attribute" = Option<String>, Query, description = "`key:value`: the attribute equals the value."), ("label" = Option<String>, Query, description = "Carrying this label.")),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
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

#[utoipa::path(
    get,
    path = "/v1/contacts/{id}",
    tag = "contacts",
    params(("id" = Uuid, Path), AtPosition, AsOfParam),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn contact(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one_as_of::<blazz_domain::contact::Contact>(&s, &caller, List::Contacts, id, &p, "contact").await
}

#[utoipa::path(
    get,
    path = "/v1/groups",
    tag = "groups",
    params(Paging),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn groups(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Groups, &p, vec![]).await
}

#[utoipa::path(
    get,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = Uuid, Path), AtPosition),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn group(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Groups, id, p.min_position, "group").await
}

#[utoipa::path(
    get,
    path = "/v1/templates",
    tag = "templates",
    params(Paging, ("status" = Option<String>, Query, description = "Review status (APPROVED, PENDING, REJECTED, …).")),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn templates(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let f = p.status.clone().map(|st| Filter::Text("status", st.to_ascii_uppercase())).into_iter().collect();
    list(&s, &caller, List::Templates, &p, f).await
}

#[utoipa::path(
    get,
    path = "/v1/templates/{id}",
    tag = "templates",
    params(("id" = Uuid, Path), AtPosition),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn template(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Templates, id, p.min_position, "template").await
}

#[utoipa::path(
    get,
    path = "/v1/channels",
    tag = "channels",
    params(Paging),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn channels(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Channels, &p, vec![]).await
}

#[utoipa::path(
    get,
    path = "/v1/channels/{id}",
    tag = "channels",
    params(("id" = Uuid, Path), AtPosition),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn channel(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Channels, id, p.min_position, "channel").await
}

#[utoipa::path(
    get,
    path = "/v1/conversations",
    tag = "inbox",
    params(Paging, ("unread" = Option<bool>, Query, description = "`true`: with unread inbound messages."), ("channel_id" = Option<Uuid>, Query, description = "On this channel."), ("contact_id" = Option<Uuid>, Query, description = "With this contact."), ("status" = Option<String>, Query, description = "open, pending, snoozed or resolved."), ("label" = Option<String>, Query, description = "Carrying this label."), ("assignee" = Option<Uuid>, Query, description = "Assigned to this agent."), ("team" = Option<Uuid>, Query, description = "Of this team."), ("unassigned" = Option<bool>, Query, description = "`true`: without an agent."), ("priority" = Option<String>, Query, description = "none, low, medium, high or urgent.")),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
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

#[utoipa::path(
    get,
    path = "/v1/conversations/{id}",
    tag = "inbox",
    params(("id" = Uuid, Path), AtPosition, AsOfParam),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn conversation(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one_as_of::<blazz_domain::conversation::Conversation>(&s, &caller, List::Conversations, id, &p, "conversation")
        .await
}

/// `GET /v1/conversations/{id}/notes`: its private notes, oldest first.
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}/notes",
    tag = "inbox",
    params(("id" = Uuid, Path), Paging),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn notes(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Notes, &p, vec![Filter::Id("conversation_id", id)]).await
}

/// `GET /v1/agents`: agents with their open and unread conversation counts.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "agents",
    params(Paging),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn agents(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Agents, &p, vec![]).await
}

#[utoipa::path(
    get,
    path = "/v1/agents/{id}",
    tag = "agents",
    params(("id" = Uuid, Path), AtPosition),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn agent(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Agents, id, p.min_position, "agent").await
}

#[utoipa::path(
    get,
    path = "/v1/teams",
    tag = "agents",
    params(Paging),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn teams(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::Teams, &p, vec![]).await
}

#[utoipa::path(
    get,
    path = "/v1/teams/{id}",
    tag = "agents",
    params(("id" = Uuid, Path), AtPosition),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn team(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one(&s, &caller, List::Teams, id, p.min_position, "team").await
}

#[utoipa::path(
    get,
    path = "/v1/messages",
    tag = "messages",
    params(Paging, ("status" = Option<String>, Query, description = "queued, sent, delivered, read, failed, …"), ("conversation_id" = Option<Uuid>, Query, description = "In this conversation."), ("contact_id" = Option<Uuid>, Query, description = "To or from this contact.")),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
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

#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    params(("id" = Uuid, Path), AtPosition, AsOfParam),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn message(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one_as_of::<blazz_domain::message::Message>(&s, &caller, List::Messages, id, &p, "message").await
}

#[utoipa::path(
    get,
    path = "/v1/campaigns",
    tag = "campaigns",
    params(Paging, ("status" = Option<String>, Query, description = "draft, scheduled, running, paused, completed or cancelled.")),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
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

#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}",
    tag = "campaigns",
    params(("id" = Uuid, Path), AtPosition, AsOfParam),
    responses((status = 200, description = "Found.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn campaign(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    one_as_of::<blazz_domain::campaign::Campaign>(&s, &caller, List::Campaigns, id, &p, "campaign").await
}

#[utoipa::path(
    get,
    path = "/v1/canned-responses",
    tag = "agents",
    params(Paging),
    responses((status = 200, description = "Found.", body = crate::openapi::Page)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn canned_responses(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    list(&s, &caller, List::CannedResponses, &p, vec![]).await
}
