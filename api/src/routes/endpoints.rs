//! Outbound webhook endpoints (`/v1/webhook-endpoints`) and their deliveries
//! (`/v1/webhook-deliveries`): create, change, rotate the secret, read the delivery log, replay one
//! delivery or a time range. Owners and admins only (URLs and delivery logs are integration
//! details). See docs/operations.md "Outbound webhooks".

use super::queries::ReadParams;
use super::{command_response, merged, Written};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use blazz_commands::outbound::guard;
use blazz_commands::outcome::EndpointWritten;
use blazz_domain::endpoint::EndpointCommand;
use blazz_domain::role::Action;
use blazz_projections::read_models::webhooks::subscribes_sql;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// Most events one range replay enqueues.
pub const MAX_REPLAY: i64 = 100_000;

fn internal(e: sqlx::Error) -> ApiError {
    ApiError::internal(&e)
}

/// A URL the deliverer would refuse (a literal private address) is refused at once.
fn public_url(s: &AppState, url: &str) -> Result<(), ApiError> {
    guard::check_url(url.trim(), s.webhooks_allow_private)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "webhook_url_not_public", e.to_string()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where deliveries are posted (http or https).
    url: String,
    /// `*`, `<category>.*` or exact event types (docs/events.md).
    event_types: Vec<String>,
    description: Option<String>,
}

/// `POST /v1/webhook-endpoints`: the answer carries the signing secret (`whsec_…`), shown only here.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    tag = "integrations",
    request_body = NewEndpoint,
    responses((status = 201, description = "Created; `secret` is shown once.", body = Written<EndpointWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    body: JsonBody<NewEndpoint>,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let NewEndpoint { url, event_types, description } = body.value;
    public_url(&s, &url)?;
    let ctx = caller.context(Some(body.fingerprint));
    let (result, secret) =
        s.commands.create_webhook_endpoint(&ctx, &s.endpoint_secrets, url, event_types, description).await?;
    Ok(with_secret(StatusCode::CREATED, result, secret))
}

fn with_secret(
    status: StatusCode,
    result: blazz_commands::CommandResult<EndpointWritten>,
    secret: Option<blazz_commands::credentials::Secret>,
) -> Response {
    let replayed = result.replayed;
    let mut body = json!({ "endpoint_id": result.outcome.endpoint_id, "position": result.position });
    match secret {
        Some(secret) => body["secret"] = json!(secret.expose()),
        // The first answer carried it; a repeated request does not make another.
        None => body["secret"] = Value::Null,
    }
    let mut response = (status, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    response
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = EndpointChange)]
#[serde(deny_unknown_fields)]
pub struct Change {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    /// `false` disables (deliveries wait), `true` enables again.
    enabled: Option<bool>,
}

#[utoipa::path(
    patch,
    path = "/v1/webhook-endpoints/{id}",
    tag = "integrations",
    params(("id" = Uuid, Path)),
    request_body = Change,
    responses((status = 200, description = "Done.", body = Written<EndpointWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Change>,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let Change { url, event_types, description, enabled } = body.value;
    if let Some(url) = &url {
        public_url(&s, url)?;
    }
    let ctx = caller.context(Some(body.fingerprint));
    let changed = if url.is_some() || event_types.is_some() || description.is_some() {
        let command = EndpointCommand::Update { url, event_types, description };
        Some(s.commands.change_webhook_endpoint(&ctx, id, command).await?)
    } else {
        None
    };
    let toggled = match enabled {
        None => None,
        Some(true) => Some(EndpointCommand::Enable { now: ctx.now }),
        Some(false) => Some(EndpointCommand::Disable { reason: format!("disabled by {}", ctx.actor), now: ctx.now }),
    };
    let toggled = match toggled {
        Some(command) => {
            let mut second = ctx.clone();
            second.idempotency = ctx.idempotency.clone().map(|mut i| {
                i.key.push_str(":enabled");
                i
            });
            Some(s.commands.change_webhook_endpoint(&second, id, command).await?)
        }
        None => None,
    };
    if changed.is_none() && toggled.is_none() {
        return Err(ApiError::bad_request("empty_change", "give url, event_types, description or enabled"));
    }
    let result = merged(changed, toggled, |a, b| a.or(b).unwrap_or(EndpointWritten { endpoint_id: id }));
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    tag = "integrations",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Deleted; its deliveries stop.", body = Written<EndpointWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let result = s.commands.change_webhook_endpoint(&caller.context(None), id, EndpointCommand::Delete).await?;
    s.endpoint_secrets.remove(id).await.map_err(|e| ApiError::internal(&e))?;
    Ok(command_response(StatusCode::OK, result))
}

/// `POST /v1/webhook-endpoints/{id}/rotate-secret`: a new secret; the old one keeps signing beside it
/// for 24 hours.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/rotate-secret",
    tag = "integrations",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Rotated; `secret` is shown once.", body = Written<EndpointWritten>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn rotate_secret(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let (result, secret) = s.commands.rotate_webhook_secret(&caller.context(None), &s.endpoint_secrets, id).await?;
    Ok(with_secret(StatusCode::OK, result, secret))
}

const ENDPOINT_JSON: &str = "json_build_object(
    'endpoint_id', e.endpoint_id, 'url', e.url, 'event_types', e.event_types, 'description', e.description,
    'enabled', e.enabled, 'disabled_reason', e.disabled_reason, 'created_at', e.created_at, 'updated_at', e.updated_at,
    'failing_since', h.failing_since, 'last_success_at', h.last_success_at, 'last_error', h.last_error,
    'pending', (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.endpoint_id AND d.status = 'pending'))";

#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    tag = "integrations",
    params(ReadParams),
    responses((status = 200, description = "The workspace's endpoints.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<ReadParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    super::queries::consistent(&s, &caller, p.min_position).await?;
    let items: Value = sqlx::query_scalar(&format!(
        "SELECT COALESCE(json_agg({ENDPOINT_JSON} ORDER BY e.created_at), '[]')
         FROM webhook_endpoints e LEFT JOIN webhook_endpoint_health h USING (endpoint_id)
         WHERE e.workspace_id = $1 AND NOT e.deleted"
    ))
    .bind(caller.workspace_id())
    .fetch_one(&s.pool)
    .await
    .map_err(internal)?;
    Ok(Json(json!({ "items": items })))
}

#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}",
    tag = "integrations",
    params(("id" = Uuid, Path), ReadParams),
    responses((status = 200, description = "The endpoint, with its health.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<ReadParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    super::queries::consistent(&s, &caller, p.min_position).await?;
    let found: Option<Value> = sqlx::query_scalar(&format!(
        "SELECT {ENDPOINT_JSON} FROM webhook_endpoints e LEFT JOIN webhook_endpoint_health h USING (endpoint_id)
         WHERE e.workspace_id = $1 AND e.endpoint_id = $2 AND NOT e.deleted"
    ))
    .bind(caller.workspace_id())
    .bind(id)
    .fetch_optional(&s.pool)
    .await
    .map_err(internal)?;
    found.map(Json).ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

const DELIVERY_JSON: &str = "json_build_object(
    'delivery_id', d.delivery_id, 'endpoint_id', d.endpoint_id, 'event_id', d.event_id, 'event_type', d.event_type,
    'stream_id', d.stream_id, 'position', d.position, 'recorded_at', d.recorded_at, 'status', d.status,
    'attempts', d.attempts, 'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
    'delivered_at', d.delivered_at, 'last_error', d.last_error)";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// Deliveries of events before this log position (the `next_before` of the previous page).
    before: Option<i64>,
    /// 1–500, default 50.
    limit: Option<i64>,
}

/// The newest deliveries of an endpoint first.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}/deliveries",
    tag = "integrations",
    params(("id" = Uuid, Path), DeliveryParams),
    responses((status = 200, description = "A page of deliveries.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn deliveries(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(p): Query<DeliveryParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let limit = super::queries::limit(p.limit)?;
    if p.status.as_deref().is_some_and(|s| !matches!(s, "pending" | "delivered" | "failed")) {
        return Err(ApiError::bad_request("invalid_query", "status must be pending, delivered or failed"));
    }
    let rows: Vec<(i64, Value)> = sqlx::query_as(&format!(
        "SELECT d.position, {DELIVERY_JSON} FROM webhook_deliveries d
         WHERE d.workspace_id = $1 AND d.endpoint_id = $2 AND ($3::text IS NULL OR d.status = $3)
           AND ($4::bigint IS NULL OR d.position < $4)
         ORDER BY d.position DESC LIMIT $5"
    ))
    .bind(caller.workspace_id())
    .bind(id)
    .bind(&p.status)
    .bind(p.before)
    .bind(limit)
    .fetch_all(&s.pool)
    .await
    .map_err(internal)?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.0)).flatten();
    Ok(Json(json!({ "items": rows.into_iter().map(|r| r.1).collect::<Vec<_>>(), "next_before": next })))
}

#[utoipa::path(
    get,
    path = "/v1/webhook-deliveries/{id}",
    tag = "integrations",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The delivery with every attempt.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn delivery(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let found: Option<Value> = sqlx::query_scalar(&format!(
        "SELECT {DELIVERY_JSON}::jsonb || jsonb_build_object('attempt_log', (
            SELECT COALESCE(json_agg(json_build_object('started_at', a.started_at, 'latency_ms', a.latency_ms,
                   'status_code', a.status_code, 'error', a.error, 'retry_at', a.retry_at) ORDER BY a.attempt_id), '[]')
            FROM webhook_attempts a WHERE a.delivery_id = d.delivery_id))
         FROM webhook_deliveries d WHERE d.workspace_id = $1 AND d.delivery_id = $2"
    ))
    .bind(caller.workspace_id())
    .bind(id)
    .fetch_optional(&s.pool)
    .await
    .map_err(internal)?;
    found.map(Json).ok_or_else(|| ApiError::not_found("webhook delivery"))
}

/// `POST /v1/webhook-deliveries/{id}/replay`: sends it again now, with a fresh retry schedule (the
/// same `webhook-id`).
#[utoipa::path(
    post,
    path = "/v1/webhook-deliveries/{id}/replay",
    tag = "integrations",
    params(("id" = Uuid, Path)),
    responses((status = 202, description = "Due now.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn replay(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL,
                last_error = NULL
         WHERE workspace_id = $1 AND delivery_id = $2 AND (leased_until IS NULL OR leased_until < now())",
    )
    .bind(caller.workspace_id())
    .bind(id)
    .execute(&s.pool)
    .await
    .map_err(internal)?;
    if done.rows_affected() == 0 {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE workspace_id = $1 AND delivery_id = $2)",
        )
        .bind(caller.workspace_id())
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .map_err(internal)?;
        if !exists {
            return Err(ApiError::not_found("webhook delivery"));
        }
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_in_flight",
            "an attempt is under way; retry shortly",
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "delivery_id": id, "status": "pending" }))).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRange {
    /// Events recorded at or after this time…
    from: DateTime<Utc>,
    /// …and before this one.
    to: DateTime<Utc>,
}

/// `POST /v1/webhook-endpoints/{id}/replay`: every subscribed event recorded in `[from, to)` is
/// delivered again (or for the first time, if the endpoint missed it while disabled), at most
/// 100,000 per request, oldest first.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/replay",
    tag = "integrations",
    params(("id" = Uuid, Path)),
    request_body = ReplayRange,
    responses((status = 202, description = "How many deliveries are due now; `complete` is false when the cap cut the range.", body = Object)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn replay_range(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<ReplayRange>,
) -> Result<Response, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let ReplayRange { from, to } = body.value;
    if from >= to {
        return Err(ApiError::bad_request("invalid_range", "from must be before to"));
    }
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE workspace_id = $1 AND endpoint_id = $2 AND NOT deleted)",
    )
    .bind(caller.workspace_id())
    .bind(id)
    .fetch_one(&s.pool)
    .await
    .map_err(internal)?;
    if !exists {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    let replayed: i64 = sqlx::query_scalar(&format!(
        "WITH picked AS (
            SELECT ev.* FROM webhook_endpoints e
            JOIN events ev ON ev.workspace_id = e.workspace_id AND ev.recorded_at >= $3 AND ev.recorded_at < $4
             AND ev.stream_id NOT LIKE 'webhook\\_endpoint-%' AND {}
            WHERE e.endpoint_id = $2 AND e.workspace_id = $1
            ORDER BY ev.position LIMIT $5
         ), written AS (
            INSERT INTO webhook_deliveries (delivery_id, endpoint_id, workspace_id, event_id, position, stream_id,
                                            stream_version, event_type, order_key, recorded_at, next_attempt_at)
            SELECT gen_random_uuid(), $2, p.workspace_id, p.event_id, p.position, p.stream_id, p.stream_version,
                   p.event_type, COALESCE(m.order_key, p.stream_id), p.recorded_at, now()
            FROM picked p LEFT JOIN webhook_message_conversations m ON m.message_stream = p.stream_id
            ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = 'pending', attempts = 0, next_attempt_at = now(),
               delivered_at = NULL, last_error = NULL
            WHERE webhook_deliveries.leased_until IS NULL OR webhook_deliveries.leased_until < now()
            RETURNING 1
         ) SELECT count(*) FROM written",
        subscribes_sql("ev.event_type")
    ))
    .bind(caller.workspace_id())
    .bind(id)
    .bind(from)
    .bind(to)
    .bind(MAX_REPLAY)
    .fetch_one(&s.pool)
    .await
    .map_err(internal)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": replayed, "complete": replayed < MAX_REPLAY }))).into_response())
}
