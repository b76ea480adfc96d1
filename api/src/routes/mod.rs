//! Routes, one file per resource. Every command answers with the ids it created and the log
//! `position` it wrote; a replayed idempotent answer carries `Idempotent-Replayed: true`.

mod agents;
mod api_keys;
mod automation;
mod bot;
mod campaigns;
mod canned;
mod channels;
mod contacts;
mod conversations;
mod endpoints;
mod groups;
mod history;
mod import;
mod media;
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
use axum::{Json, Router};
use blazz_commands::CommandResult;
pub(crate) use history::event_json;
use queries as q;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest body of an ordinary request.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Largest body of a contact import (100,000 rows of CSV or JSON fit easily); the import reads its
/// body as a stream and applies this itself.
pub const IMPORT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Every route, with its OpenAPI operation: a route exists exactly when it is in the document.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let webhook = OpenApiRouter::new()
        .routes(routes!(webhooks::verify, webhooks::receive))
        .layer(DefaultBodyLimit::max(webhooks::WEBHOOK_BODY_LIMIT));
    let (router, mut document) = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(workspaces::create))
        .routes(routes!(workspaces::show, workspaces::update))
        .routes(routes!(api_keys::issue))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(channels::connect, q::channels))
        .routes(routes!(channels::update, q::channel))
        .routes(routes!(channels::set_credentials))
        .routes(routes!(channels::resume))
        .routes(routes!(contacts::create, q::contacts))
        .routes(routes!(contacts::update, contacts::delete, q::contact))
        .routes(routes!(contacts::opt_out))
        .routes(routes!(contacts::erase))
        .routes(routes!(contacts::opt_in))
        .routes(routes!(contacts::labels))
        .routes(routes!(import::import))
        .routes(routes!(groups::create, q::groups))
        .routes(routes!(groups::rename, q::group))
        .routes(routes!(groups::add_members))
        .routes(routes!(groups::remove_members))
        .routes(routes!(templates::create, q::templates))
        .routes(routes!(q::template))
        .routes(routes!(templates::review))
        .routes(routes!(messages::send, q::messages))
        .routes(routes!(q::message))
        .routes(routes!(campaigns::create, q::campaigns))
        .routes(routes!(q::campaign))
        .routes(routes!(campaigns::launch))
        .routes(routes!(campaigns::schedule))
        .routes(routes!(campaigns::pause))
        .routes(routes!(campaigns::resume))
        .routes(routes!(campaigns::cancel))
        .routes(routes!(q::conversations))
        .routes(routes!(q::conversation))
        .routes(routes!(conversations::set_status))
        .routes(routes!(conversations::labels))
        .routes(routes!(conversations::read))
        .routes(routes!(conversations::assign))
        .routes(routes!(conversations::priority))
        .routes(routes!(conversations::add_note, q::notes))
        .routes(routes!(conversations::reply))
        .routes(routes!(agents::create, q::agents))
        .routes(routes!(agents::update, q::agent))
        .routes(routes!(agents::deactivate))
        .routes(routes!(agents::reactivate))
        .routes(routes!(agents::availability))
        .routes(routes!(canned::create, q::canned_responses))
        .routes(routes!(canned::update, canned::delete))
        .routes(routes!(agents::create_team, q::teams))
        .routes(routes!(agents::update_team, q::team))
        .routes(routes!(agents::add_members))
        .routes(routes!(agents::remove_members))
        .routes(routes!(q::daily_stats))
        .routes(routes!(q::inbox_report))
        .routes(routes!(q::campaign_report))
        .routes(routes!(q::usage))
        .routes(routes!(stream::stream))
        .routes(routes!(history::log))
        .routes(routes!(history::stream))
        .routes(routes!(history::state))
        .routes(routes!(history::correlation))
        .merge(webhook)
        .routes(routes!(webhooks::list_exceptions))
        .routes(routes!(parked::list))
        .routes(routes!(parked::retry))
        .routes(routes!(parked::skip))
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(endpoints::update, endpoints::delete, endpoints::show))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::deliveries))
        .routes(routes!(endpoints::replay_range))
        .routes(routes!(endpoints::delivery))
        .routes(routes!(endpoints::replay))
        .routes(routes!(automation::create, automation::list))
        .routes(routes!(automation::create_preset))
        .routes(routes!(automation::update, automation::delete, automation::show))
        .routes(routes!(automation::runs))
        .routes(routes!(bot::put, bot::get, bot::delete))
        .routes(routes!(media::list, media::upload))
        .routes(routes!(media::show))
        .routes(routes!(media::content))
        .routes(routes!(workspaces::set_rate_limit))
        .routes(routes!(crate::metrics::scrape))
        .routes(routes!(crate::ops::page))
        .routes(routes!(crate::ops::overview_json))
        .routes(routes!(crate::ops::stream))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .split_for_parts();
    crate::openapi::Conventions.modify(&mut document);
    (router, document)
}

/// The gateway is up (it answers without the database).
#[utoipa::path(get, path = "/healthz", tag = "operator", responses((status = 200, body = Object, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The body of a command's answer: its outcome and the log position it wrote (`null` when the
/// command changed nothing). Pass `position` as `min_position` to a query to read your write.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
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
