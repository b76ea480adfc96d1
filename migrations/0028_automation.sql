-- Automation rules (issue 14, item 2).

-- Projection `automation`: the rules, as their events left them.
CREATE TABLE automation_rules (
    rule_id      UUID        PRIMARY KEY,
    workspace_id UUID        NOT NULL,
    name         TEXT        NOT NULL,
    trigger      TEXT        NOT NULL,
    spec         JSONB       NOT NULL,
    enabled      BOOLEAN     NOT NULL DEFAULT true,
    deleted      BOOLEAN     NOT NULL DEFAULT false,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX automation_rules_live ON automation_rules (workspace_id, created_at) WHERE enabled AND NOT deleted;

-- Projection `automation`: each workspace's time zone (business hours are its wall clock).
CREATE TABLE automation_workspaces (
    workspace_id UUID PRIMARY KEY,
    timezone     TEXT NOT NULL
);

-- Projection `automation`: messages queued by automation; their failures start no rule (no loops).
CREATE TABLE automation_messages (
    message_id UUID PRIMARY KEY
);

-- One run per (rule, event), enqueued by the projector in its transaction; the worker performs its
-- actions (commands with idempotency keys from rule and event) and owns the rest of the row.
CREATE TABLE automation_runs (
    run_id          UUID        PRIMARY KEY,
    rule_id         UUID        NOT NULL,
    workspace_id    UUID        NOT NULL,
    event_id        UUID        NOT NULL,
    position        BIGINT      NOT NULL,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    conversation_id UUID,
    event_at        TIMESTAMPTZ NOT NULL,
    -- pending (due at next_attempt_at), done (every action ran or was refused), failed (gave up).
    status          TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts        INT         NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Per action: its kind and outcome (ok, or the refusal's code and message).
    results         JSONB       NOT NULL DEFAULT '[]',
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    UNIQUE (rule_id, event_id)
);
CREATE INDEX automation_runs_due ON automation_runs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX automation_runs_rate ON automation_runs (rule_id, conversation_id, event_at);
CREATE INDEX automation_runs_rule ON automation_runs (rule_id, position DESC);
