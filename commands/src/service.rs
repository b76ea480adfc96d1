//! [`Commands`]: the write-side entry point, and the cycle every handler shares:
//! replay an idempotent answer if there is one, load the aggregate, decide, append with the expected
//! version (retrying a lost race on fresh state), and store the answer under the idempotency key in the
//! same transaction as the events.

use crate::codec::Codec;
use crate::context::{CommandContext, CommandResult};
use crate::error::CommandError;
use crate::keys::KeyCache;
use crate::outcome::Outcome;
use crate::pacing::BulkPacer;
use crate::store::{
    AppendError, AppendRequest, Claim, ClaimRelease, EventStore, ExpectedVersion, IdempotencyWrite, Lineage,
    RecordedEvent, StoreError,
};
use blazz_domain::aggregate::{stream_id, Aggregate};
use blazz_domain::{DomainError, DomainEvent};
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// How often a command is re-decided after losing an optimistic-concurrency race.
const CONFLICT_RETRIES: usize = 3;

/// Claim scopes, and the error code a taken claim of each scope answers with.
pub mod scopes {
    pub const API_KEY: &str = "api_key";
    pub const CONTACT_PHONE: &str = "contact_phone";
    /// `<workspace id>:<BSUID>` of a contact: one contact per WhatsApp business-scoped user id.
    pub const CONTACT_USER_ID: &str = "contact_user_id";
    pub const CHANNEL_NUMBER: &str = "channel_phone_number_id";
    pub const TEMPLATE_NAME: &str = "template_name";
    /// A provider message id (wamid) of an outbound message, owned by its message stream.
    pub const PROVIDER_MESSAGE: &str = "provider_message_id";
    /// `<channel id>:<wamid>` of an inbound message, owned by its conversation: absorbs redeliveries.
    pub const INBOUND_MESSAGE: &str = "inbound_message";
    /// `<workspace id>:<email>` of an agent: one agent per email in a workspace.
    pub const AGENT_EMAIL: &str = "agent_email";
    /// `<workspace id>:<short code>` of a canned response.
    pub const CANNED_CODE: &str = "canned_short_code";

    /// A claim value as a client knows it: without the `<workspace id>:` prefix of workspace scopes.
    pub fn display_value(value: &str) -> &str {
        match value.split_once(':') {
            Some((ws, rest)) if uuid::Uuid::try_parse(ws).is_ok() => rest,
            _ => value,
        }
    }

    pub fn taken_code(scope: &str) -> &'static str {
        match scope {
            CONTACT_PHONE => "phone_taken",
            CONTACT_USER_ID => "user_id_taken",
            CHANNEL_NUMBER => "phone_number_id_taken",
            TEMPLATE_NAME => "template_exists",
            AGENT_EMAIL => "email_taken",
            CANNED_CODE => "short_code_taken",
            _ => "already_exists",
        }
    }
}

/// How long a verified API key is remembered by default.
pub const DEFAULT_KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// The write side. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Commands {
    store: Arc<dyn EventStore>,
    codec: Codec,
    key_cache: Arc<KeyCache>,
    pacer: Arc<BulkPacer>,
    /// The data keys behind `store`, when it seals personal data (`crate::personal`).
    vault: Option<crate::personal::Vault>,
}

impl std::fmt::Debug for dyn EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStore")
    }
}

/// An aggregate loaded from its stream.
#[derive(Debug)]
pub struct Loaded<A> {
    pub state: A,
    pub version: u64,
}

/// What a handler decided: the events plus what must commit with them.
#[derive(Debug)]
pub struct Plan<E, T> {
    pub events: Vec<E>,
    pub claims: Vec<Claim>,
    pub releases: Vec<ClaimRelease>,
    /// The answer to the client (stored for idempotent replay as [`Outcome::stored`]).
    pub result: T,
    /// The workspace the events belong to when it is not the caller's (workspace creation).
    pub workspace: Option<Uuid>,
    /// The events react to this stream's (see [`CommandContext::follows`]); the plan's wins.
    pub follows: Option<Lineage>,
}

impl<E, T> Plan<E, T> {
    pub fn new(events: Vec<E>, result: T) -> Self {
        Self { events, claims: vec![], releases: vec![], result, workspace: None, follows: None }
    }

    pub fn following(mut self, lineage: Option<Lineage>) -> Self {
        self.follows = lineage;
        self
    }
}

/// The answer to a command once its events are written at `position`.
fn written<T>(outcome: T, position: Option<i64>) -> CommandResult<T> {
    CommandResult { outcome, position, replayed: false }
}

impl Commands {
    pub fn new(store: Arc<dyn EventStore>, codec: Codec) -> Self {
        Self::with_key_cache_ttl(store, codec, DEFAULT_KEY_CACHE_TTL)
    }

    /// With a chosen time to live for verified API keys (zero disables the cache).
    pub fn with_key_cache_ttl(store: Arc<dyn EventStore>, codec: Codec, ttl: std::time::Duration) -> Self {
        Self { store, codec, key_cache: Arc::new(KeyCache::new(ttl)), pacer: Arc::default(), vault: None }
    }

    /// Over a store that seals personal data with `vault`'s keys, so contacts can be erased.
    pub fn with_vault(mut self, vault: crate::personal::Vault) -> Self {
        self.vault = Some(vault);
        self
    }

    pub fn vault(&self) -> Option<&crate::personal::Vault> {
        self.vault.as_ref()
    }

    /// With bulk work (imports, campaign fan-outs) keeping `share` of its time while other
    /// workspaces are active (see [`crate::pacing`]).
    pub fn with_bulk_share(mut self, share: f64) -> Self {
        self.pacer = Arc::new(BulkPacer::new(share));
        self
    }

    /// Who has been active lately, and how long bulk work rests.
    pub fn pacer(&self) -> &BulkPacer {
        &self.pacer
    }

    pub(crate) fn key_cache(&self) -> &KeyCache {
        &self.key_cache
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The stored answer for this context's idempotency key, if a command with it already ran.
    pub async fn replayed<T: Outcome>(&self, ctx: &CommandContext) -> Result<Option<CommandResult<T>>, CommandError> {
        let Some(idem) = &ctx.idempotency else {
            return Ok(None);
        };
        let Some(record) = self.store.idempotency_record(ctx.workspace_id, &idem.key).await? else {
            return Ok(None);
        };
        if record.fingerprint != idem.fingerprint {
            return Err(CommandError::IdempotencyKeyReused);
        }
        let outcome = serde_json::from_value(record.result)
            .map_err(|e| StoreError::Corrupt(format!("idempotency record {}: {e}", idem.key)))?;
        Ok(Some(CommandResult { outcome, position: record.position, replayed: true }))
    }

    /// Folds stored events of one aggregate, rejecting streams of other workspaces as not found.
    pub(crate) fn fold<A>(&self, workspace: Uuid, events: &[RecordedEvent]) -> Result<Loaded<A>, CommandError>
    where
        A: Aggregate,
        A::Event: TryFrom<DomainEvent>,
    {
        if events.first().is_some_and(|e| e.workspace_id != workspace) {
            return Err(DomainError::NotFound(A::CATEGORY).into());
        }
        let mut state = A::default();
        for e in events {
            state = self.evolved(state, e)?;
        }
        Ok(Loaded { state, version: events.last().map_or(0, |e| e.stream_version) })
    }

    /// `state` with one stored event of its stream folded in.
    pub(crate) fn evolved<A>(&self, state: A, e: &RecordedEvent) -> Result<A, CommandError>
    where
        A: Aggregate,
        A::Event: TryFrom<DomainEvent>,
    {
        let decoded = A::Event::try_from(self.codec.decode(e)?)
            .map_err(|_| crate::store::StoreError::Corrupt(format!("{} in stream {}", e.event_type, e.stream_id)))?;
        Ok(state.evolve(&decoded))
    }

    /// Loads an aggregate of the caller's workspace.
    pub async fn load<A>(&self, workspace: Uuid, id: Uuid) -> Result<Loaded<A>, CommandError>
    where
        A: Aggregate,
        A::Event: TryFrom<DomainEvent>,
    {
        Ok(self.load_traced(workspace, id).await?.0)
    }

    /// Like [`Commands::load`], with the stream's [`Lineage`] (what a reaction to it follows).
    pub async fn load_traced<A>(&self, workspace: Uuid, id: Uuid) -> Result<(Loaded<A>, Option<Lineage>), CommandError>
    where
        A: Aggregate,
        A::Event: TryFrom<DomainEvent>,
    {
        let events = self.store.read_stream(&stream_id::<A>(id), 1, None).await?;
        Ok((self.fold(workspace, &events)?, Lineage::of(&events)))
    }

    /// The shared cycle: replay, load, decide (through `plan`), append; re-decides on a lost race.
    #[tracing::instrument(level = "debug", skip_all, fields(aggregate = A::CATEGORY, %id, workspace = %ctx.workspace_id))]
    pub(crate) async fn execute<A, T>(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        plan: impl Fn(&A) -> Result<Plan<A::Event, T>, CommandError>,
    ) -> Result<CommandResult<T>, CommandError>
    where
        A: Aggregate,
        T: Outcome,
        A::Event: TryFrom<DomainEvent> + Into<DomainEvent> + Clone,
    {
        if let Some(r) = self.replayed(ctx).await? {
            return Ok(r);
        }
        let mut attempt = 0;
        loop {
            let loaded = self.load::<A>(ctx.workspace_id, id).await?;
            let decided = plan(&loaded.state)?;
            let expected = ExpectedVersion::from_current(loaded.version);
            match self.append(ctx, stream_id::<A>(id), expected, decided).await {
                Err(CommandError::Conflict(_)) if attempt < CONFLICT_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }

    /// The store request of a plan (with the context's metadata and idempotency record), and the
    /// answer to give once it is written.
    ///
    /// Whatever the handler and the domain checked, nothing the database cannot store leaves here:
    /// a value it refuses would fail the write it travels in (see [`storable_request`]).
    fn request<E, T: Outcome>(
        &self,
        ctx: &CommandContext,
        stream: String,
        expected: ExpectedVersion,
        plan: Plan<E, T>,
    ) -> Result<(AppendRequest, T), CommandError>
    where
        E: Into<DomainEvent>,
    {
        let Plan { events, claims, releases, result, workspace, follows } = plan;
        let events: Vec<_> = events.into_iter().map(|e| self.codec.encode(&e.into())).collect();
        let mut metadata = ctx.metadata();
        if let Some(l) = follows.or(ctx.follows) {
            metadata.correlation_id = l.correlation_id;
            metadata.causation_id = Some(l.event_id);
        }
        let mut request = AppendRequest::new(stream, workspace.unwrap_or(ctx.workspace_id), expected, events, metadata);
        request.claims = claims;
        request.releases = releases;
        if let Some(i) = &ctx.idempotency {
            request.idempotency = Some(IdempotencyWrite {
                scope: ctx.workspace_id,
                key: i.key.clone(),
                fingerprint: i.fingerprint.clone(),
                result: stored(&result)?,
            });
        }
        storable_request(&request)?;
        Ok((request, result))
    }

    /// Appends a plan to a stream with the context's metadata and idempotency record.
    #[tracing::instrument(level = "debug", skip_all, fields(%stream))]
    pub(crate) async fn append<E, T: Outcome>(
        &self,
        ctx: &CommandContext,
        stream: String,
        expected: ExpectedVersion,
        plan: Plan<E, T>,
    ) -> Result<CommandResult<T>, CommandError>
    where
        E: Into<DomainEvent>,
    {
        let (request, answer) = self.request(ctx, stream, expected, plan)?;
        self.pacer.note(request.workspace_id);
        match self.store.append(request).await {
            Ok(out) => Ok(written(answer, out.position)),
            // A concurrent request with the same key committed first: answer with its result.
            Err(AppendError::IdempotencyKeyUsed { key }) => match self.replayed(ctx).await? {
                Some(first) => Ok(first),
                None => Err(CommandError::Conflict(format!("idempotency key {key}"))),
            },
            Err(e) => Err(Self::append_error(e)),
        }
    }

    /// Appends several plans of one context (without an idempotency key) together: each succeeds or
    /// fails on its own, and they share a round trip. Answers in the order of `plans`.
    pub(crate) async fn append_each<E, T: Outcome>(
        &self,
        ctx: &CommandContext,
        plans: Vec<(String, ExpectedVersion, Plan<E, T>)>,
    ) -> Vec<Result<CommandResult<T>, CommandError>>
    where
        E: Into<DomainEvent>,
    {
        debug_assert!(ctx.idempotency.is_none(), "one idempotency key cannot cover several appends");
        // A plan that cannot be stored fails alone; the others are appended together.
        let mut out: Vec<Option<Result<CommandResult<T>, CommandError>>> = Vec::with_capacity(plans.len());
        let (mut requests, mut answers) = (vec![], vec![]);
        for (stream, expected, plan) in plans {
            match self.request(ctx, stream, expected, plan) {
                Ok((request, answer)) => {
                    requests.push(request);
                    answers.push((out.len(), answer));
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let outcomes = self.store.append_all(requests).await;
        for ((i, answer), outcome) in answers.into_iter().zip(outcomes) {
            out[i] = Some(match outcome {
                Ok(o) => Ok(written(answer, o.position)),
                Err(e) => Err(Self::append_error(e)),
            });
        }
        out.into_iter().map(|o| o.unwrap_or_else(|| Err(CommandError::Conflict("unanswered append".into())))).collect()
    }

    pub(crate) fn append_error(e: AppendError) -> CommandError {
        match e {
            AppendError::Conflict { stream_id, .. } => CommandError::Conflict(stream_id),
            AppendError::ClaimTaken { scope, value, owner } => CommandError::Taken {
                code: scopes::taken_code(&scope),
                message: format!("{} is already used", scopes::display_value(&value)),
                existing_id: owner.as_deref().and_then(blazz_domain::aggregate::id_of).map(|id| id.to_string()),
            },
            AppendError::IdempotencyKeyUsed { key } => CommandError::Conflict(format!("idempotency key {key}")),
            AppendError::Rejected(reason) => CommandError::Rejected(reason),
            AppendError::Store(e) => CommandError::Store(e),
        }
    }
}

/// The JSON an idempotency record keeps of an answer.
pub(crate) fn stored<T: Outcome>(outcome: &T) -> Result<Value, CommandError> {
    serde_json::to_value(outcome.stored()).map_err(|e| CommandError::Rejected(format!("answer: {e}")))
}

/// Checks everything an append writes for values the database cannot store (see
/// [`blazz_domain::values::unstorable`]): event payloads (the error names the field inside the event,
/// which is the command's field of the same name), claims and the stored answer. Metadata was checked
/// where it was made ([`CommandContext`]).
fn storable_request(r: &AppendRequest) -> Result<(), CommandError> {
    use blazz_domain::values::{storable, storable_json};
    for e in &r.events {
        storable_json("", &e.payload)?;
    }
    for c in &r.claims {
        storable(&c.scope, &c.value)?;
        storable_json(&c.scope, &c.data)?;
    }
    if let Some(i) = &r.idempotency {
        storable_json("", &i.result)?;
    }
    Ok(())
}
