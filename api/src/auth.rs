//! Authentication as extractors: [`Caller`] for workspace API keys, [`Operator`] for the operator
//! token. Both read `Authorization: Bearer <secret>`.

use crate::error::ApiError;
use crate::extract::RequestMeta;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use blazz_commands::context::Idempotency;
use blazz_commands::handlers::workspace::Principal;
use blazz_commands::CommandContext;
use blazz_domain::role::{Action, Role};
use chrono::Utc;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// The bearer token of a request's `Authorization` header.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The authenticated API key of a request, scoped to its workspace.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub meta: RequestMeta,
}

impl Caller {
    pub fn workspace_id(&self) -> Uuid {
        self.principal.workspace_id.as_uuid()
    }

    /// `Ok` if the key's role allows `action`, else 403.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        self.principal.role.require(action).map_err(ApiError::from)
    }

    /// The context for a command whose request has this fingerprint.
    pub fn context(&self, fingerprint: Option<String>) -> CommandContext {
        CommandContext {
            agent_id: self.principal.agent_id,
            ..context(
                self.workspace_id(),
                self.principal.role,
                format!("api_key:{}", self.principal.key_id),
                &self.meta,
                fingerprint,
            )
        }
    }
}

pub(crate) fn context(
    workspace_id: Uuid,
    role: Role,
    actor: String,
    meta: &RequestMeta,
    fingerprint: Option<String>,
) -> CommandContext {
    CommandContext {
        workspace_id,
        role,
        actor,
        agent_id: None,
        request_id: meta.request_id.clone(),
        correlation_id: meta.correlation_id,
        follows: None,
        idempotency: meta
            .idempotency_key
            .clone()
            .map(|key| Idempotency { key, fingerprint: fingerprint.unwrap_or_else(|| meta.fingerprint.clone()) }),
        now: Utc::now(),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let principal = state.commands.authenticate(secret).await?.ok_or_else(ApiError::unauthorized)?;
        if !principal.agent_active {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "agent_deactivated",
                "this API key acts as a deactivated agent; reactivate the agent or use another key",
            ));
        }
        acting_agent(&parts.headers, principal.agent_id)?;
        state.rates.check(&state.pool, principal.workspace_id.as_uuid(), principal.key_id.as_uuid()).await?;
        // Bulk work of other workspaces yields while this one is active.
        state.commands.pacer().note(principal.workspace_id.as_uuid());
        let meta = RequestMeta::from_request_parts(parts, state).await?;
        Ok(Self { principal, meta })
    }
}

/// `X-Agent-Id` states which agent a request acts as. A key acts only as the agent it is bound to,
/// so the header is a check, never a way in: naming another agent, or any agent with a key bound to
/// none, is refused (403 `agent_mismatch`); an owner or admin assigning work is recorded as itself.
fn acting_agent(headers: &axum::http::HeaderMap, bound: Option<blazz_domain::ids::AgentId>) -> Result<(), ApiError> {
    let Some(value) = headers.get("x-agent-id") else {
        return Ok(());
    };
    let named = value.to_str().ok().and_then(|v| Uuid::try_parse(v.trim()).ok());
    let Some(named) = named else {
        return Err(ApiError::bad_request("invalid_header", "X-Agent-Id must be an agent id (a UUID)"));
    };
    if bound.map(|a| a.as_uuid()) == Some(named) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "agent_mismatch",
            "this API key does not act as that agent; issue a key bound to the agent (POST /v1/api-keys with agent_id)",
        ))
    }
}

/// A request carrying the operator token.
#[derive(Debug, Clone)]
pub struct Operator {
    pub meta: RequestMeta,
}

impl Operator {
    pub fn context(&self, workspace_id: Uuid, fingerprint: Option<String>) -> CommandContext {
        context(workspace_id, Role::Owner, "operator".into(), &self.meta, fingerprint)
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.operator_token else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "operator_disabled",
                "no operator token is configured (BLAZZ_OPERATOR_TOKEN)",
            ));
        };
        let presented = bearer(&parts.headers)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the operator token is required"))?;
        if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the operator token is required"));
        }
        let meta = RequestMeta::from_request_parts(parts, state).await?;
        Ok(Self { meta })
    }
}
