-- Each tenant's own providers per channel, tried in `position` order before the providers of
-- the installation. `settings` (base URL, sender, project) are shown by the API; the
-- credentials are sealed with ChaCha20-Poly1305 under NOTIFY_CREDENTIALS_KEY, bound to the
-- tenant, channel and name, and never shown.

CREATE TABLE tenant_providers (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel      text NOT NULL,
    position     integer NOT NULL CHECK (position >= 0),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    settings     jsonb NOT NULL,
    -- A 12-byte nonce followed by the ciphertext and its tag.
    credentials  bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, channel, position),
    UNIQUE (tenant_id, channel, name)
);
