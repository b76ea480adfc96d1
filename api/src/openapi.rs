//! The OpenAPI 3.1 document, generated from the routes (`utoipa-axum` registers every route with its
//! `#[utoipa::path]`) and the request and answer types (`ToSchema`), served at `GET /openapi.json`
//! and printed by `blazz openapi`.
//!
//! Conventions the document states once instead of on every operation (added by [`Conventions`]):
//! the error answers every operation may give (one body shape, a machine-readable `code`), the
//! `Idempotency-Key` header of commands, operation ids, and what the security requirement's list
//! means: the roles whose API keys may call the operation.

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Blazz",
        description = "Multi-tenant WhatsApp Business messaging: contacts, groups, templates, channels, \
messages, campaigns and an agents' inbox, over an event-sourced log.\n\n\
Authenticate with a workspace API key (`Authorization: Bearer <key>`); the list of a security \
requirement names the roles whose keys may call the operation. Operator routes take the operator \
token instead.\n\n\
Every command answers with the log `position` it wrote; pass it as `min_position` to a query to read \
your own write. Commands take an `Idempotency-Key` header: a retry with the same key and body answers \
the first answer again (with `Idempotent-Replayed: true`).\n\n\
Errors answer `{\"error\": {\"code\", \"message\", \"details\"?}}`; `code` is one of `ErrorCode`.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    tags(
        (name = "workspaces", description = "The workspace and its API keys"),
        (name = "channels", description = "WhatsApp sender numbers"),
        (name = "contacts", description = "Contacts, consent, labels and imports"),
        (name = "groups", description = "Contact groups (campaign audiences)"),
        (name = "templates", description = "Message templates and their review"),
        (name = "messages", description = "Sending and reading messages"),
        (name = "campaigns", description = "A template sent to an audience at the channel's rate"),
        (name = "inbox", description = "Conversations, notes and assignment"),
        (name = "agents", description = "Agents, teams and canned responses"),
        (name = "reports", description = "Daily statistics, inbox and campaign reports, usage"),
        (name = "history", description = "The event log, for auditors"),
        (name = "live", description = "Read-model deltas over WebSocket"),
        (name = "webhooks", description = "The WhatsApp Cloud API webhook"),
        (name = "integrations", description = "Outbound webhooks to your own systems (Standard Webhooks)"),
        (name = "operator", description = "Operating the deployment (operator token)"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// An error answer.
#[derive(Debug, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; may change between versions.
    pub message: String,
    /// Machine-readable context where there is some (`field`, `variable`, `existing_id`, …).
    #[schema(value_type = Option<Object>)]
    pub details: Option<()>,
}

/// A page of a read-model list: rows as the read model holds them (the read models' columns, see
/// docs/api.md), and `next_after` to pass as `after` for the next page (`null` on the last).
#[derive(Debug, ToSchema)]
pub struct Page {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<()>,
    pub next_after: Option<uuid::Uuid>,
}

/// Rows of a report, one per day (and grouping).
#[derive(Debug, ToSchema)]
pub struct Rows {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<()>,
}

/// A page of an operator list, newest first; `next_after` is the last row's id.
#[derive(Debug, ToSchema)]
pub struct OperatorPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<()>,
    pub next_after: Option<i64>,
}

/// An event as the history answers it.
#[derive(Debug, ToSchema)]
pub struct HistoryEvent {
    pub position: i64,
    /// Where a reader that has seen this event continues (`after`).
    pub cursor: String,
    pub workspace_id: uuid::Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Object)]
    pub payload: (),
    /// `correlation_id`, `causation_id`, `actor`, `request_id`, `agent_id`.
    #[schema(value_type = Object)]
    pub metadata: (),
    /// The link chaining the event to its stream predecessor (hex SHA-256; `blazz audit verify`,
    /// docs/operations.md#tamper-evidence); `null` only on an event not sealed yet.
    pub hash: Option<String>,
    /// Personal fields of the payload (JSON pointers) that read as erased: their contact was erased
    /// (`POST /v1/contacts/{id}/erase`). They show as `null`, `""`, `{}` or `[]`.
    pub erased: Vec<String>,
}

/// A page of the log, in commit order.
#[derive(Debug, ToSchema)]
pub struct EventPage {
    pub events: Vec<HistoryEvent>,
    /// Pass as `after` for the next page (also when this page is empty: new events come after it).
    pub next_cursor: String,
}

/// A page of one stream, in version order.
#[derive(Debug, ToSchema)]
pub struct StreamPage {
    pub stream_id: String,
    pub events: Vec<HistoryEvent>,
    /// Pass as `from_version` for the next page; `null` on the last.
    pub next_from_version: Option<i64>,
}

/// Every error code the API answers with.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ErrorCode {
    // The request as a whole.
    InvalidBody,
    InvalidJson,
    InvalidPath,
    InvalidQuery,
    InvalidHeader,
    WebsocketRequired,
    InvalidIdempotencyKey,
    InvalidCursor,
    InvalidLimit,
    UnsupportedMediaType,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    Forbidden,
    OperatorDisabled,
    AgentMismatch,
    RateLimited,
    Overloaded,
    Unavailable,
    NotYetConsistent,
    UnknownPosition,
    // Commands.
    ValidationFailed,
    NotFound,
    AlreadyExists,
    LastOwnerKey,
    OutsideServiceWindow,
    ContactOptedOut,
    TemplateNotApproved,
    MissingTemplateVariable,
    ChannelUnavailable,
    InvalidState,
    EmptyAudience,
    AgentDeactivated,
    ConcurrentModification,
    IdempotencyKeyReused,
    UnstorableData,
    PhoneTaken,
    UserIdTaken,
    PhoneNumberIdTaken,
    TemplateExists,
    EmailTaken,
    ShortCodeTaken,
    EmptyChange,
    // Outbound webhooks.
    WebhookUrlNotPublic,
    DeliveryInFlight,
    // Media.
    MediaNotStored,
    InvalidRange,
    // Imports.
    InvalidCsv,
    InvalidRow,
    RowTooLarge,
    TooManyRows,
    // Operator routes.
    NotOpen,
    UnknownProjection,
    // The webhook.
    InvalidSignature,
    ChannelNotConfigured,
    VerificationFailed,
    UnsupportedObject,
}

/// The error answers every operation may give.
const ERRORS: [(&str, &str, &str); 11] = [
    ("400", "BadRequest", "The request is malformed: body, path, query or a header (`invalid_*`)."),
    ("401", "Unauthorized", "No valid API key or operator token."),
    ("403", "Forbidden", "The key's role may not do this (`forbidden`), or the key's agent is deactivated."),
    ("404", "NotFound", "No such resource in the caller's workspace."),
    ("408", "RequestTimeout", "The request took longer than the gateway allows."),
    ("409", "Conflict", "The state does not allow it, or a unique value is taken (`*_taken`, `invalid_state`, …)."),
    ("413", "PayloadTooLarge", "The body is larger than allowed."),
    ("415", "UnsupportedMediaType", "The body is not `application/json`."),
    ("422", "Unprocessable", "The request is well-formed but the domain refuses it (`validation_failed`, …)."),
    ("429", "RateLimited", "The key's request rate is exceeded; `Retry-After` says when to retry."),
    ("503", "Unavailable", "Overloaded, not yet consistent (`min_position`), or the store is unavailable; retry."),
];

/// Adds what every operation shares (see the module's documentation), the security schemes, and
/// operation ids (`<method>_<path>`: handler names repeat across resources). Applied to the
/// document of the routes, once they are all registered.
#[derive(Debug)]
pub struct Conventions;

impl Modify for Conventions {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("blazz key").build()),
        );
        components.add_security_scheme(
            "operator",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Bearer <operator token>` (BLAZZ_OPERATOR_TOKEN)",
            ))),
        );
        for (_, name, description) in ERRORS {
            let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            let response = ResponseBuilder::new().description(description).content("application/json", body).build();
            components.responses.insert(name.into(), RefOr::T(response));
        }
        for (path, item) in api.paths.paths.iter_mut() {
            let slug: String = path
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("_");
            for (method, op) in [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("patch", &mut item.patch),
                ("delete", &mut item.delete),
            ] {
                if let Some(op) = op {
                    op.operation_id = Some(format!("{method}_{slug}"));
                }
            }
            let commands = [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for op in commands.into_iter().flatten() {
                if path.starts_with("/v1/") && !path.starts_with("/v1/webhooks/") {
                    idempotency_header(op);
                }
            }
            for op in
                [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
            {
                for (status, name, _) in ERRORS {
                    op.responses
                        .responses
                        .entry(status.into())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

fn idempotency_header(op: &mut Operation) {
    let visible_ascii = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[!-~]{1,255}$"));
    op.parameters.get_or_insert_with(Vec::new).push(optional_param(
        "Idempotency-Key",
        ParameterIn::Header,
        visible_ascii,
        "1-255 visible ASCII characters. A retry with the same key and body answers the first answer \
         again; with another body, 422 `idempotency_key_reused`.",
    ));
}

/// An optional parameter, for operations whose parameters are not read by one `IntoParams` type.
pub(crate) fn optional_param(name: &str, at: ParameterIn, schema: ObjectBuilder, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(at)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The document of the routes (see [`crate::routes::router`]).
pub fn document() -> utoipa::openapi::OpenApi {
    crate::routes::router().1
}
