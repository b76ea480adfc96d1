//! `POST /v1/contacts`, `PATCH|DELETE /v1/contacts/{id}`, `POST /v1/contacts/{id}/opt-out|opt-in|erase`.

use super::Written;
use super::{command_response, double_option, LabelChange};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::handlers::contact::{ContactChange, NewContact};
use blazz_commands::outcome::{ContactConsent, ContactDeleted, ContactErased, ContactLabels, ContactWritten};
use blazz_domain::contact::ConsentSource;
use blazz_domain::ids::ContactId;
use blazz_domain::values::{Attributes, PhoneNumber};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewContact)]
#[serde(deny_unknown_fields)]
pub struct Create {
    phone: String,
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: Attributes,
}

#[utoipa::path(
    post,
    path = "/v1/contacts",
    tag = "contacts",
    request_body = Create,
    responses((status = 201, description = "Created.", body = Written<ContactWritten>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn create(State(s): State<AppState>, caller: Caller, body: JsonBody<Create>) -> Result<Response, ApiError> {
    let b = body.value;
    let input = NewContact { phone: PhoneNumber::parse(&b.phone)?, name: b.name, attributes: b.attributes };
    let result = s.commands.create_contact(&caller.context(Some(body.fingerprint)), input).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ContactChange)]
#[serde(deny_unknown_fields)]
pub struct Update {
    #[serde(default, deserialize_with = "double_option")]
    name: Option<Option<String>>,
    phone: Option<String>,
    /// Attributes to set; `null` removes one.
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: Attributes,
}

#[utoipa::path(
    patch,
    path = "/v1/contacts/{id}",
    tag = "contacts",
    params(("id" = Uuid, Path)),
    request_body = Update,
    responses((status = 200, description = "Done.", body = Written<ContactWritten>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Update>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let change = ContactChange {
        name: b.name,
        phone: b.phone.as_deref().map(PhoneNumber::parse).transpose()?,
        attributes: b.attributes,
    };
    let result =
        s.commands.update_contact(&caller.context(Some(body.fingerprint)), ContactId::from_uuid(id), change).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    delete,
    path = "/v1/contacts/{id}",
    tag = "contacts",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<ContactDeleted>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn delete(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.delete_contact(&caller.context(None), ContactId::from_uuid(id)).await?;
    Ok(command_response(StatusCode::OK, result))
}

/// Erases a contact's personal data for good: its name, phone, attributes, message texts and
/// media references read as erased everywhere (history, read models, rebuilds, exports), its phone
/// number and BSUID are free again. The log keeps every event (sealed), so counts and the audit
/// chain stay whole. Erasing twice answers the same.
#[utoipa::path(
    post,
    path = "/v1/contacts/{id}/erase",
    tag = "contacts",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Done.", body = Written<ContactErased>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn erase(State(s): State<AppState>, caller: Caller, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    let result = s.commands.erase_contact(&caller.context(None), ContactId::from_uuid(id)).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    reason: Option<String>,
    /// `api` (default), `keyword`, `provider` or `import`.
    source: Option<String>,
}

async fn consent(
    s: AppState,
    caller: Caller,
    id: Uuid,
    body: JsonBody<Consent>,
    opt_out: bool,
) -> Result<Response, ApiError> {
    let source = body.value.source.as_deref().map(ConsentSource::parse).transpose()?.unwrap_or(ConsentSource::Api);
    let ctx = caller.context(Some(body.fingerprint));
    let result =
        s.commands.set_contact_consent(&ctx, ContactId::from_uuid(id), opt_out, body.value.reason, source).await?;
    Ok(command_response(StatusCode::OK, result))
}

#[utoipa::path(
    post,
    path = "/v1/contacts/{id}/opt-out",
    tag = "contacts",
    params(("id" = Uuid, Path)),
    request_body = Consent,
    responses((status = 200, description = "Done.", body = Written<ContactConsent>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn opt_out(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Consent>,
) -> Result<Response, ApiError> {
    consent(s, caller, id, body, true).await
}

#[utoipa::path(
    post,
    path = "/v1/contacts/{id}/opt-in",
    tag = "contacts",
    params(("id" = Uuid, Path)),
    request_body = Consent,
    responses((status = 200, description = "Done.", body = Written<ContactConsent>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn opt_in(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<Consent>,
) -> Result<Response, ApiError> {
    consent(s, caller, id, body, false).await
}

#[utoipa::path(
    post,
    path = "/v1/contacts/{id}/labels",
    tag = "contacts",
    params(("id" = Uuid, Path)),
    request_body = LabelChange,
    responses((status = 200, description = "Done.", body = Written<ContactLabels>)),
    security(("api_key" = ["owner", "admin", "agent"]))
)]
pub async fn labels(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: JsonBody<LabelChange>,
) -> Result<Response, ApiError> {
    let LabelChange { add, remove } = body.value;
    let ctx = caller.context(Some(body.fingerprint));
    let result = s.commands.label_contact(&ctx, ContactId::from_uuid(id), add, remove).await?;
    Ok(command_response(StatusCode::OK, result))
}
