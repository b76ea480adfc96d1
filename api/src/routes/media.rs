//! Media (`/v1/media`): uploads to send by our id, what inbound media was fetched and stored, and
//! the bytes, for keys of its workspace only. See docs/operations.md "Media".

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::state::AppState;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use blazz_commands::handlers::message::SendContent;
use blazz_domain::message::{MediaKind, MediaRef};
use blazz_domain::role::Action;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

const MEDIA_JSON: &str = "json_build_object(
    'media_id', m.media_id, 'message_id', m.message_id, 'channel_id', m.channel_id, 'direction', m.direction,
    'kind', m.kind, 'mime_type', m.mime_type, 'filename', m.filename, 'size', m.size, 'sha256', m.sha256,
    'status', m.status, 'attempts', m.attempts, 'last_error', m.last_error, 'created_at', m.created_at,
    'stored_at', m.stored_at, 'content_url', '/v1/media/' || m.media_id || '/content')";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The media of this message.
    message_id: Option<Uuid>,
    /// 1–500, default 50.
    limit: Option<i64>,
}

/// The workspace's media, newest first.
#[utoipa::path(
    get,
    path = "/v1/media",
    tag = "messages",
    params(ListParams),
    responses((status = 200, description = "Media records.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    let limit = super::queries::limit(p.limit)?;
    let items: Value = sqlx::query_scalar(&format!(
        "SELECT COALESCE(json_agg(x.j ORDER BY x.created_at DESC), '[]') FROM (
            SELECT {MEDIA_JSON} AS j, m.created_at FROM media m
            WHERE m.workspace_id = $1 AND ($2::uuid IS NULL OR m.message_id = $2)
            ORDER BY m.created_at DESC LIMIT $3) x"
    ))
    .bind(caller.workspace_id())
    .bind(p.message_id)
    .bind(limit)
    .fetch_one(&s.pool)
    .await
    .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(json!({ "items": items })))
}

async fn record(s: &AppState, caller: &Caller, id: Uuid) -> Result<Value, ApiError> {
    let found: Option<Value> =
        sqlx::query_scalar(&format!("SELECT {MEDIA_JSON} FROM media m WHERE m.workspace_id = $1 AND m.media_id = $2"))
            .bind(caller.workspace_id())
            .bind(id)
            .fetch_optional(&s.pool)
            .await
            .map_err(|e| ApiError::internal(&e))?;
    found.ok_or_else(|| ApiError::not_found("media"))
}

#[utoipa::path(
    get,
    path = "/v1/media/{id}",
    tag = "messages",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The media record.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn show(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Json<Value>, ApiError> {
    caller.require(Action::Read)?;
    record(&s, &caller, id).await.map(Json)
}

/// The media's bytes, with its MIME type; 409 `media_not_stored` while it is being fetched or after
/// fetching failed.
#[utoipa::path(
    get,
    path = "/v1/media/{id}/content",
    tag = "messages",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The bytes.", content_type = "application/octet-stream")),
    security(("api_key" = ["owner", "admin", "agent", "viewer"]))
)]
pub async fn content(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    caller.require(Action::Read)?;
    let m = record(&s, &caller, id).await?;
    if m["status"] != "stored" {
        let why = format!(
            "the media is {} ({})",
            m["status"].as_str().unwrap_or(""),
            m["last_error"].as_str().unwrap_or("no error")
        );
        return Err(ApiError::new(StatusCode::CONFLICT, "media_not_stored", why));
    }
    let key = blazz_commands::media::object_key(caller.workspace_id(), id);
    let got = s.media.get_opts(&key, GetOptions::default()).await.map_err(|e| ApiError::internal(&e))?;
    let mime = m["mime_type"].as_str().unwrap_or("application/octet-stream").to_owned();
    let body = Body::from_stream(got.into_stream());
    Ok(([(header::CONTENT_TYPE, mime)], body).into_response())
}

/// The WhatsApp kind of a MIME type Meta accepts, if any.
fn kind_of(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "image/jpeg" | "image/png" => "image",
        "image/webp" => "sticker",
        "video/mp4" | "video/3gpp" => "video",
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => "audio",
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint" => "document",
        m if m.starts_with("application/vnd.openxmlformats-officedocument.") => "document",
        _ => return None,
    })
}

/// The largest upload (a document's limit).
pub const MAX_UPLOAD: usize = 100 * 1024 * 1024;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The file's name (documents show it).
    filename: Option<String>,
}

/// `POST /v1/media`: the body is the file, `Content-Type` its MIME type, which decides its kind
/// (image: JPEG, PNG ≤ 5 MB; sticker: WebP ≤ 500 KB; video: MP4, 3GPP ≤ 16 MB; audio: AAC, AMR,
/// MPEG, MP4, OGG ≤ 16 MB; document: text, PDF, Office ≤ 100 MB). Send it with
/// `{"type": <kind>, "media": {"media_id": …}}`.
#[utoipa::path(
    post,
    path = "/v1/media",
    tag = "messages",
    params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file."),
    responses((status = 201, description = "Stored.", body = Object)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    Query(p): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Action::SendMessages)?;
    // Read here, not by an extractor: the gateway's JSON body limit is far below a document's.
    let too_large = || {
        let why = format!("at most {MAX_UPLOAD} bytes");
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", why)
    };
    let body: Bytes = axum::body::to_bytes(body, MAX_UPLOAD).await.map_err(|_| too_large())?;
    let mime = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some(kind) = kind_of(&mime) else {
        let why = format!("{mime:?} is not a media type WhatsApp takes (docs/operations.md \"Media\")");
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", why));
    };
    if body.is_empty() {
        return Err(ApiError::bad_request("invalid_body", "the file is empty"));
    }
    let limit = blazz_commands::media::max_bytes(kind);
    if body.len() as u64 > limit {
        let why = format!("a {kind} may have at most {limit} bytes; this has {}", body.len());
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", why));
    }
    let filename = p
        .filename
        .map(|f| blazz_domain::values::bounded_text("filename", &f, 240))
        .transpose()
        .map_err(blazz_commands::error::CommandError::from)?;
    let (id, workspace) = (Uuid::now_v7(), caller.workspace_id());
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&body))
    };
    let size = body.len() as i64;
    s.media
        .put_opts(&blazz_commands::media::object_key(workspace, id), PutPayload::from(body), PutOptions::default())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    sqlx::query(
        "INSERT INTO media (media_id, workspace_id, channel_id, direction, kind, mime_type, sha256, size, filename,
                            object_key, status, stored_at)
         VALUES ($1, $2, '00000000-0000-0000-0000-000000000000', 'out', $3, $4, $5, $6, $7, $8, 'stored', now())",
    )
    .bind(id)
    .bind(workspace)
    .bind(kind)
    .bind(&mime)
    .bind(&sha256)
    .bind(size)
    .bind(&filename)
    .bind(blazz_commands::media::object_key(workspace, id).to_string())
    .execute(&s.pool)
    .await
    .map_err(|e| ApiError::internal(&e))?;
    Ok((StatusCode::CREATED, Json(record(&s, &caller, id).await?)))
}

/// Refuses a send of our media unless it is stored in the caller's workspace, of the message's kind.
pub(crate) async fn check_stored(s: &AppState, caller: &Caller, content: &SendContent) -> Result<(), ApiError> {
    let SendContent::Media { kind, media: MediaRef::Stored(id), .. } = content else {
        return Ok(());
    };
    let found: Option<String> =
        sqlx::query_scalar("SELECT kind FROM media WHERE workspace_id = $1 AND media_id = $2 AND status = 'stored'")
            .bind(caller.workspace_id())
            .bind(id)
            .fetch_optional(&s.pool)
            .await
            .map_err(|e| ApiError::internal(&e))?;
    let wanted = match kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    };
    match found {
        Some(k) if k == wanted => Ok(()),
        Some(k) => {
            Err(blazz_domain::DomainError::invalid("media.media_id", format!("this media is a {k}, not a {wanted}"))
                .into())
        }
        None => {
            Err(blazz_domain::DomainError::invalid("media.media_id", "no stored media of this workspace with this id")
                .into())
        }
    }
}
