//! One error type for every route. 4xx answers carry a JSON body with a stable `code`; 5xx answers are
//! opaque to the client and logged once with their cause.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use blazz_commands::store::StoreError;
use blazz_commands::CommandError;
use blazz_domain::DomainError;
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None, retry_after: None }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API key is required (Authorization: Bearer <key>)")
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// A failure that is ours, not the client's: logged with its cause, answered without it.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.details {
            error["details"] = d;
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let status = match &e {
            DomainError::Invalid { .. }
            | DomainError::OutsideServiceWindow
            | DomainError::ContactOptedOut
            | DomainError::TemplateNotApproved(_)
            | DomainError::MissingVariable(_)
            | DomainError::EmptyAudience => StatusCode::UNPROCESSABLE_ENTITY,
            DomainError::NotFound(_) => StatusCode::NOT_FOUND,
            DomainError::AlreadyExists(_)
            | DomainError::LastOwnerKey
            | DomainError::ChannelUnavailable(_)
            | DomainError::InvalidState(_)
            | DomainError::AgentDeactivated => StatusCode::CONFLICT,
            DomainError::Forbidden { .. } => StatusCode::FORBIDDEN,
        };
        let details = match &e {
            DomainError::Invalid { field, .. } => Some(json!({ "field": field })),
            DomainError::MissingVariable(v) => Some(json!({ "variable": v })),
            _ => None,
        };
        Self { status, code: e.code(), message: e.to_string(), details, retry_after: None }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            CommandError::Conflict(_) => Self::new(StatusCode::CONFLICT, "concurrent_modification", e.to_string()),
            CommandError::Taken { code, message, existing_id } => {
                let err = Self::new(StatusCode::CONFLICT, code, message);
                match existing_id {
                    Some(id) => err.with_details(json!({ "existing_id": id })),
                    None => err,
                }
            }
            CommandError::IdempotencyKeyReused => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", e.to_string())
            }
            CommandError::Rejected(reason) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unstorable_data",
                format!("the request holds data that cannot be stored: {reason}"),
            ),
            CommandError::Store(StoreError::Closed | StoreError::Unavailable(_)) => {
                tracing::error!(error = %e, "store unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the event store is unavailable; retry later")
                    .retry_after(1)
            }
            CommandError::Store(_) | CommandError::Codec(_) => Self::internal(&e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        CommandError::Store(e).into()
    }
}
