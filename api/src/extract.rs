//! Extractors whose rejections use the API's error format, and the per-request facts every command
//! needs (request id, idempotency key, a fingerprint of the request).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A JSON body, plus the fingerprint of the request (method, path and exact body bytes; empty without an
/// `Idempotency-Key`) used to detect
/// an idempotency key reused for a different request.
#[derive(Debug)]
pub struct JsonBody<T> {
    pub value: T,
    pub fingerprint: String,
}

pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut h = fingerprint_hasher(method, path);
    h.update(body);
    hex::encode(h.finalize())
}

/// The fingerprint's hasher before the body: for bodies hashed as they stream in.
pub fn fingerprint_hasher(method: &Method, path: &str) -> Sha256 {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h
}

pub fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
    })
}

/// Reads the whole body, turning a body over the route's limit into 413.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        } else {
            ApiError::bad_request("invalid_body", e.body_text())
        }
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !is_json(content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ));
        }
        let idempotent = req.headers().contains_key(IDEMPOTENCY_KEY);
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let bytes = body_bytes(req, state).await?;
        storable_body(&bytes)?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))?;
        // Only idempotent requests are compared by fingerprint; the others skip the hashing.
        let fingerprint = if idempotent { fingerprint(&method, &path, &bytes) } else { String::new() };
        Ok(Self { value, fingerprint })
    }
}

/// Refuses a JSON body with a string (or key) the database cannot store, naming its field: 422
/// `validation_failed` with `details.field` (e.g. `name`, `attributes.city`, `contacts[3].name`).
/// JSON can carry a NUL only as the escape `\u0000`, so bodies without that byte sequence (all but a
/// hostile few) pass after one scan, unparsed.
pub fn storable_body(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => blazz_domain::values::storable_json("", &value).map_err(ApiError::from),
        // Not JSON: the caller's parse answers that.
        Err(_) => Ok(()),
    }
}

/// Path parameters; a malformed id is a 400 with code `invalid_path`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// A WebSocket handshake; a plain HTTP request is a 400 with code `websocket_required`.
#[derive(Debug)]
pub struct Upgrade(pub axum::extract::ws::WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::ws::WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(|e| ApiError::bad_request("websocket_required", e.body_text()))
    }
}

/// Query parameters; malformed ones are a 400 with code `invalid_query`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// Request id (from `x-request-id`, set by the request-id layer) and the optional `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    /// The request's correlation id ([`correlate`]): every event it causes carries it.
    pub correlation_id: uuid::Uuid,
    pub idempotency_key: Option<String>,
    /// Fingerprint of a request without a body (method and path).
    pub fingerprint: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let idempotency_key = match parts.headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(v) => {
                let key =
                    v.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 255).ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_idempotency_key",
                            "Idempotency-Key must be 1-255 visible ASCII characters",
                        )
                    })?;
                Some(key.to_owned())
            }
        };
        let fingerprint = match idempotency_key {
            Some(_) => fingerprint(&parts.method, parts.uri.path(), b""),
            None => String::new(),
        };
        let correlation_id = parts.extensions.get::<CorrelationId>().map_or_else(uuid::Uuid::now_v7, |c| c.0);
        Ok(Self { request_id: header_str("x-request-id"), correlation_id, idempotency_key, fingerprint })
    }
}

/// A request's correlation id, set by [`correlate`].
#[derive(Debug, Clone, Copy)]
pub struct CorrelationId(pub uuid::Uuid);

/// Gives every request a correlation id and answers it in `X-Correlation-Id`: the events the request
/// writes, and everything the system does in reaction (dispatch, delivery statuses, a campaign's
/// messages), carry it; `GET /v1/history/correlations/{id}` lists them.
pub async fn correlate(mut req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let id = uuid::Uuid::now_v7();
    req.extensions_mut().insert(CorrelationId(id));
    let mut response = next.run(req).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-correlation-id", value);
    }
    response
}
