-- Tenants, their API keys, notifications, the deliveries they fan out to, every attempt of a
-- delivery, templates and recipient profiles. Every table but tenants carries tenant_id, and
-- every query filters on it.

CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    -- Standard Webhooks signing secret, "whsec_" followed by base64.
    webhook_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash    bytea NOT NULL UNIQUE,
    -- The first characters of the key, so an operator can tell keys apart.
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    idempotency_key  text,
    -- The validated request as accepted; enrich fans out from it.
    request          jsonb NOT NULL,
    priority         text NOT NULL,
    category         text,
    -- accepted: committed, maybe not yet published; fanned_out: deliveries exist.
    status           text NOT NULL DEFAULT 'accepted' CHECK (status IN ('accepted', 'fanned_out', 'cancelled')),
    delivery_count   integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    fanned_out_at    timestamptz,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX notifications_unpublished ON notifications (created_at) WHERE status = 'accepted';
CREATE INDEX notifications_tenant_created ON notifications (tenant_id, created_at);

CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    recipient_index  integer NOT NULL,
    user_id          text,
    channel          text NOT NULL,
    address          text,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN
                         ('pending', 'sending', 'retrying', 'delivered', 'failed', 'suppressed', 'dead_lettered')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    -- The broker message whose handler holds the delivery while it is `sending`.
    claimed_by       uuid,
    provider         text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (notification_id, recipient_index, channel)
);
CREATE INDEX deliveries_tenant ON deliveries (tenant_id);

CREATE TABLE attempts (
    delivery_id  uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text CHECK (outcome IN ('delivered', 'failed', 'retrying', 'dead_lettered')),
    error        text,
    provider     text,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE TABLE templates (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    channel     text NOT NULL,
    -- '' is the variant used when no locale matches.
    locale      text NOT NULL DEFAULT '',
    title       text,
    content     text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, channel, locale)
);

CREATE TABLE recipients (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    profile     jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
