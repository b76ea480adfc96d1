-- Bot hand-off (issue 14, item 3).

-- A workspace's bot: an OpenAI-compatible chat-completions endpoint that may answer conversations
-- in `pending`. Configuration, like channel credentials: not in the log (it holds a secret, sealed
-- with BLAZZ_SECRET_KEY with the bot id as associated data).
CREATE TABLE bot_configs (
    workspace_id     UUID        PRIMARY KEY,
    -- The `rule_id` of its runs in automation_runs; a new one for every configuration.
    bot_id           UUID        NOT NULL UNIQUE,
    base_url         TEXT        NOT NULL,
    model            TEXT        NOT NULL,
    system_prompt    TEXT        NOT NULL,
    sealed_key       BYTEA,
    handoff_keywords TEXT[]      NOT NULL DEFAULT '{}',
    -- Below this mean token probability the answer goes to a human (null: not checked).
    min_confidence   DOUBLE PRECISION,
    -- Messages of the conversation given to the model.
    history          INT         NOT NULL DEFAULT 10,
    enabled          BOOLEAN     NOT NULL DEFAULT true,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A run is a rule's or the bot's; a bot's turn in a conversation comes after the rules' runs of the
-- same event (a rule may put the conversation in pending first).
ALTER TABLE automation_runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'rule' CHECK (kind IN ('rule', 'bot'));
