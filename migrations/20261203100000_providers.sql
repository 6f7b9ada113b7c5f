-- Push tokens that a push service answered as unregistered: enrich skips them, so a
-- recipient's next live token (or the next failover channel) is used instead.

CREATE TABLE dead_push_tokens (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token      text NOT NULL,
    user_id    text,
    reason     text NOT NULL,
    marked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token)
);
