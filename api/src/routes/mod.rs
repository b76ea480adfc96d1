//! Routes, one file per resource. Every command answers with the ids it created and the log
//! `position` it wrote; a replayed idempotent answer carries `Idempotent-Replayed: true`.

mod agents;
mod api_keys;
mod campaigns;
mod canned;
mod channels;
mod contacts;
mod conversations;
mod groups;
mod history;
mod import;
mod messages;
mod parked;
mod queries;
mod stream;
mod templates;
mod webhooks;
mod workspaces;

use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use blazz_commands::CommandResult;
use queries as q;
use serde::{Deserialize, Deserializer, Serialize};

/// Largest body of an ordinary request.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Largest body of a contact import (100,000 rows of CSV or JSON fit easily); the import reads its
/// body as a stream and applies this itself.
pub const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/v1/workspaces", post(workspaces::create))
        .route("/v1/workspace", get(workspaces::show).patch(workspaces::update))
        .route("/v1/api-keys", post(api_keys::issue))
        .route("/v1/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .route("/v1/channels", post(channels::connect).get(q::channels))
        .route("/v1/channels/{id}", patch(channels::update).get(q::channel))
        .route("/v1/channels/{id}/credentials", put(channels::set_credentials))
        .route("/v1/channels/{id}/resume", post(channels::resume))
        .route("/v1/contacts", post(contacts::create).get(q::contacts))
        .route("/v1/contacts/{id}", patch(contacts::update).delete(contacts::delete).get(q::contact))
        .route("/v1/contacts/{id}/opt-out", post(contacts::opt_out))
        .route("/v1/contacts/{id}/opt-in", post(contacts::opt_in))
        .route("/v1/contacts/{id}/labels", post(contacts::labels))
        .route("/v1/contacts/import", post(import::import))
        .route("/v1/groups", post(groups::create).get(q::groups))
        .route("/v1/groups/{id}", patch(groups::rename).get(q::group))
        .route("/v1/groups/{id}/members", post(groups::add_members))
        .route("/v1/groups/{id}/members/remove", post(groups::remove_members))
        .route("/v1/templates", post(templates::create).get(q::templates))
        .route("/v1/templates/{id}", get(q::template))
        .route("/v1/templates/{id}/review", post(templates::review))
        .route("/v1/messages", post(messages::send).get(q::messages))
        .route("/v1/campaigns", post(campaigns::create).get(q::campaigns))
        .route("/v1/campaigns/{id}", get(q::campaign))
        .route("/v1/campaigns/{id}/launch", post(campaigns::launch))
        .route("/v1/campaigns/{id}/schedule", post(campaigns::schedule))
        .route("/v1/campaigns/{id}/pause", post(campaigns::pause))
        .route("/v1/campaigns/{id}/resume", post(campaigns::resume))
        .route("/v1/campaigns/{id}/cancel", post(campaigns::cancel))
        .route("/v1/messages/{id}", get(q::message))
        .route("/v1/conversations", get(q::conversations))
        .route("/v1/conversations/{id}/status", post(conversations::set_status))
        .route("/v1/conversations/{id}/labels", post(conversations::labels))
        .route("/v1/conversations/{id}/read", post(conversations::read))
        .route("/v1/conversations/{id}/assignment", post(conversations::assign))
        .route("/v1/conversations/{id}/priority", post(conversations::priority))
        .route("/v1/conversations/{id}/notes", post(conversations::add_note).get(q::notes))
        .route("/v1/conversations/{id}/messages", post(conversations::reply))
        .route("/v1/conversations/{id}", get(q::conversation))
        .route("/v1/agents", post(agents::create).get(q::agents))
        .route("/v1/agents/{id}", patch(agents::update).get(q::agent))
        .route("/v1/agents/{id}/deactivate", post(agents::deactivate))
        .route("/v1/agents/{id}/reactivate", post(agents::reactivate))
        .route("/v1/agents/{id}/availability", post(agents::availability))
        .route("/v1/canned-responses", post(canned::create).get(q::canned_responses))
        .route("/v1/canned-responses/{id}", patch(canned::update).delete(canned::delete))
        .route("/v1/teams", post(agents::create_team).get(q::teams))
        .route("/v1/teams/{id}", patch(agents::update_team).get(q::team))
        .route("/v1/teams/{id}/members", post(agents::add_members))
        .route("/v1/teams/{id}/members/remove", post(agents::remove_members))
        .route("/v1/stats/daily", get(q::daily_stats))
        .route("/v1/reports/inbox", get(q::inbox_report))
        .route("/v1/reports/campaigns/{id}", get(q::campaign_report))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/history/events", get(history::log))
        .route("/v1/history/streams/{stream_id}", get(history::stream))
        .route("/v1/history/correlations/{id}", get(history::correlation))
        .route(
            "/v1/webhooks/meta/{channel_id}",
            get(webhooks::verify).post(webhooks::receive).layer(DefaultBodyLimit::max(webhooks::WEBHOOK_BODY_LIMIT)),
        )
        .route("/v1/operator/webhook-exceptions", get(webhooks::list_exceptions))
        .route("/v1/operator/parked-events", get(parked::list))
        .route("/v1/operator/workspaces/{id}/rate-limit", put(workspaces::set_rate_limit))
        .route("/v1/operator/parked-events/{id}/retry", post(parked::retry))
        .route("/v1/operator/parked-events/{id}/skip", post(parked::skip))
        .route("/v1/usage", get(q::usage))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/ops", get(crate::ops::page))
        .route("/v1/operator/overview", get(crate::ops::overview_json))
        .route("/v1/operator/stream", get(crate::ops::stream))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// The body of a command's answer: its outcome and the log position it wrote (`null` when the
/// command changed nothing). Pass `position` as `min_position` to a query to read your write.
#[derive(Debug, Serialize)]
pub struct Written<T> {
    #[serde(flatten)]
    pub outcome: T,
    pub position: Option<i64>,
}

/// The HTTP answer to a command: its outcome plus `position`.
pub(crate) fn command_response<T: Serialize>(status: StatusCode, result: CommandResult<T>) -> Response {
    let body = Written { outcome: result.outcome, position: result.position };
    let mut response = (status, Json(body)).into_response();
    if result.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// The answer to up to two commands of one request (a PATCH of two fields): `merge` of their
/// outcomes, the last position written, replayed when every one was.
pub(crate) fn merged<A, B, T>(
    first: Option<CommandResult<A>>,
    second: Option<CommandResult<B>>,
    merge: impl FnOnce(Option<A>, Option<B>) -> T,
) -> CommandResult<T> {
    let replayed = first.as_ref().is_none_or(|r| r.replayed) && second.as_ref().is_none_or(|r| r.replayed);
    let position = second.as_ref().and_then(|r| r.position).or(first.as_ref().and_then(|r| r.position));
    CommandResult { outcome: merge(first.map(|r| r.outcome), second.map(|r| r.outcome)), position, replayed }
}

/// The body of `POST …/labels` (conversations and contacts): labels to add and to remove.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelChange {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// For PATCH bodies: distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
