-- Data keys from a key tree (docs/adr/0009-data-keys-from-a-key-tree.md). A contact created from now
-- on has no row of its own in `contact_keys`: its data key is derived from its workspace's tree, a
-- tree of seeds over the 128 bits of contact ids (a child's seed is SHA-256 of its parent's and one
-- bit). Stored are the nodes that cover every id not erased: first the root alone; erasing a contact
-- replaces the node covering it with the siblings along its path (at most 128 rows), so no stored
-- seed derives its key any more. `contact_keys` keeps the random keys of contacts created before, and
-- every erased contact's row (sealed NULL).
CREATE TABLE key_tree_nodes (
    workspace_id UUID     NOT NULL,
    -- The first contact id the node covers: the ids whose first `depth` bits are those of `lo`. A
    -- workspace's nodes never overlap, so the node covering an id is the greatest `lo` not above it.
    lo           UUID     NOT NULL,
    depth        SMALLINT NOT NULL CHECK (depth BETWEEN 0 AND 128),
    -- The node's 32-byte seed sealed with the deployment key (associated data: workspace, lo, depth).
    sealed       BYTEA    NOT NULL,
    PRIMARY KEY (workspace_id, lo)
);
