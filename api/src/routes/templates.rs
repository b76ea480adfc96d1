//! `POST /v1/templates`, and `POST /v1/templates/{id}/review` (operator: records a review outcome,
//! e.g. for sandbox channels; Meta's webhook does the same for real ones).

use super::command_response;
use super::Written;
use crate::auth::{Caller, Operator};
use crate::error::ApiError;
use crate::extract::{JsonBody, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blazz_commands::handlers::template::NewTemplate;
use blazz_commands::outcome::TemplateReview;
use blazz_domain::ids::TemplateId;
use blazz_domain::template::{Category, Component, Language, ReviewStatus, TemplateName};
use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewTemplate)]
#[serde(deny_unknown_fields)]
pub struct Create {
    name: String,
    language: String,
    category: String,
    #[schema(value_type = Vec<Object>)]
    components: Vec<Component>,
    #[serde(default)]
    defaults: BTreeMap<String, String>,
}

#[utoipa::path(
    post,
    path = "/v1/templates",
    tag = "templates",
    request_body = Create,
    responses((status = 201, description = "Created.", body = Written<TemplateReview>)),
    security(("api_key" = ["owner", "admin"]))
)]
pub async fn create(State(s): State<AppState>, caller: Caller, body: JsonBody<Create>) -> Result<Response, ApiError> {
    let b = body.value;
    let input = NewTemplate {
        name: TemplateName::parse(&b.name)?,
        language: Language::parse(&b.language)?,
        category: Category::parse(&b.category)?,
        components: b.components,
        defaults: b.defaults,
    };
    let result = s.commands.create_template(&caller.context(Some(body.fingerprint)), input).await?;
    Ok(command_response(StatusCode::CREATED, result))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    workspace_id: Uuid,
    status: String,
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/templates/{id}/review",
    tag = "operator",
    params(("id" = Uuid, Path)),
    request_body = Review,
    responses((status = 200, description = "Done.", body = Written<TemplateReview>)),
    security(("operator" = []))
)]
pub async fn review(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<Uuid>,
    body: JsonBody<Review>,
) -> Result<Response, ApiError> {
    let b = body.value;
    let ctx = op.context(b.workspace_id, Some(body.fingerprint));
    let result = s
        .commands
        .record_template_review(&ctx, TemplateId::from_uuid(id), ReviewStatus::parse(&b.status), b.reason)
        .await?;
    Ok(command_response(StatusCode::OK, result))
}
