//! A local stand-in for Meta's Graph API (`POST /{version}/{phone_number_id}/messages`): it records
//! every call (path, headers, body), checks the documented request shape, and answers with documented
//! success or error bodies chosen per recipient.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub authorization: String,
    pub content_type: String,
    pub body: Value,
    pub at: std::time::Instant,
}

/// How to answer a recipient: an HTTP status and a raw body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// Meta's error body for `code`.
    pub fn error(code: i64) -> Self {
        let body = json!({"error": {"message": format!("(#{code}) error"), "type": "OAuthException", "code": code,
                                    "error_data": {"messaging_product": "whatsapp", "details": format!("details of {code}")},
                                    "fbtrace_id": "A4O5a8RAgePwbcGSu"}});
        Self { status: 400, body: body.to_string() }
    }
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    /// Per recipient: the answer, and how many more times to give it (`None`: always).
    replies: HashMap<String, (Reply, Option<usize>)>,
    /// Time taken before answering.
    delay: std::time::Duration,
    /// Media by provider id: bytes, MIME type, the SHA-256 to announce (hex).
    media: HashMap<String, (Vec<u8>, String, String)>,
    /// Media downloads answered with 500 before the real bytes.
    media_failures: usize,
    /// Uploads received: (path, content type, raw multipart body).
    uploads: Vec<(String, String, Vec<u8>)>,
}

#[derive(Debug, Clone)]
pub struct FakeGraph {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

async fn messages(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // A phone number in `to`, or a business-scoped user id in `recipient`: exactly one of them.
    let (phone, user) = (parsed["to"].as_str(), parsed["recipient"].as_str());
    let to = phone.xor(user).unwrap_or("").to_owned();
    let (delay, n) = {
        let mut inner = inner.lock().expect("lock");
        inner.calls.push(Call {
            path: uri.path().to_owned(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body: parsed.clone(),
            at: std::time::Instant::now(),
        });
        (inner.delay, inner.calls.len())
    };
    tokio::time::sleep(delay).await;
    let mut inner = inner.lock().expect("lock");
    // The documented shape: a bad request gets Meta's error 100 like the real API would.
    let well_formed = parsed["messaging_product"] == "whatsapp" && !to.is_empty() && parsed["type"].is_string();
    if !well_formed {
        return (StatusCode::BAD_REQUEST, Reply::error(100).body);
    }
    let scripted = match inner.replies.get_mut(&to) {
        Some((reply, None)) => Some(reply.clone()),
        Some((reply, Some(n))) if *n > 0 => {
            *n -= 1;
            Some(reply.clone())
        }
        _ => None,
    };
    let reply = scripted.unwrap_or_else(|| Reply {
        status: 200,
        body: json!({"messaging_product": "whatsapp",
                     "contacts": [{"input": to, (if user.is_some() { "user_id" } else { "wa_id" }): to}],
                     "messages": [{"id": format!("wamid.FAKE.{n}")}]})
        .to_string(),
    });
    (StatusCode::from_u16(reply.status).expect("status"), reply.body)
}

/// `GET /{version}/{media_id}`: the media's (short-lived) download URL, as the Graph API answers.
async fn media_url(
    State(inner): State<Arc<Mutex<Inner>>>,
    axum::extract::Path((_, id)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let inner = inner.lock().expect("lock");
    match inner.media.get(&id) {
        Some((bytes, mime, sha)) if headers.contains_key("authorization") => (
            StatusCode::OK,
            json!({"messaging_product": "whatsapp", "url": format!("http://{}/media-download/{id}", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("")),
                   "mime_type": mime, "sha256": sha, "file_size": bytes.len(), "id": id})
            .to_string(),
        ),
        _ => (StatusCode::NOT_FOUND, Reply::error(100).body),
    }
}

/// `POST /{version}/{phone_number_id}/media`: a multipart upload; answers its new id.
async fn upload(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let mut inner = inner.lock().expect("lock");
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if !content_type.starts_with("multipart/form-data")
        || !has(b"messaging_product")
        || !headers.contains_key("authorization")
    {
        return (StatusCode::BAD_REQUEST, Reply::error(100).body);
    }
    inner.uploads.push((uri.path().to_owned(), content_type, body.to_vec()));
    (StatusCode::OK, json!({"id": format!("UPLOADED-{}", inner.uploads.len())}).to_string())
}

/// The download itself (needs the token too, like the real one).
async fn media_download(
    State(inner): State<Arc<Mutex<Inner>>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let mut inner = inner.lock().expect("lock");
    if inner.media_failures > 0 {
        inner.media_failures -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, Vec::new());
    }
    match inner.media.get(&id) {
        Some((bytes, _, _)) if headers.contains_key("authorization") => (StatusCode::OK, bytes.clone()),
        _ => (StatusCode::NOT_FOUND, Vec::new()),
    }
}

impl FakeGraph {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/{version}/{phone_number_id}/messages", axum::routing::post(messages))
            .route("/{version}/{phone_number_id}/media", axum::routing::post(upload))
            .route("/{version}/{media_id}", axum::routing::get(media_url))
            .route("/media-download/{media_id}", axum::routing::get(media_download))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer sends to `to` (without `+`) with `reply`.
    pub fn reply_to(&self, to: &str, reply: Reply) {
        self.inner.lock().expect("lock").replies.insert(to.to_owned(), (reply, None));
    }

    /// Answer the next `times` sends to `to` with `reply`, then accept.
    pub fn reply_times(&self, to: &str, reply: Reply, times: usize) {
        self.inner.lock().expect("lock").replies.insert(to.to_owned(), (reply, Some(times)));
    }

    /// Wait this long before answering each call.
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.inner.lock().expect("lock").delay = delay;
    }

    /// Serves `bytes` as media `id`, announcing `sha256` (hex) as its hash.
    pub fn media(&self, id: &str, bytes: &[u8], mime: &str, sha256: &str) {
        self.inner
            .lock()
            .expect("lock")
            .media
            .insert(id.to_owned(), (bytes.to_vec(), mime.to_owned(), sha256.to_owned()));
    }

    /// Fail the next `n` media downloads with 500.
    pub fn fail_media_downloads(&self, n: usize) {
        self.inner.lock().expect("lock").media_failures = n;
    }

    /// Media uploads received: (path, content type, raw multipart body).
    pub fn uploads(&self) -> Vec<(String, String, Vec<u8>)> {
        self.inner.lock().expect("lock").uploads.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().expect("lock").calls.clone()
    }
}
