-- Time: timers that the scheduler releases when due, delayed and held deliveries,
-- escalation levels with acknowledgment and resolution, digests, and retention.

ALTER TABLE tenants ADD COLUMN retention_days integer NOT NULL DEFAULT 30 CHECK (retention_days >= 1);

ALTER TABLE notifications
    ADD COLUMN send_at          timestamptz,
    ADD COLUMN acknowledged_at  timestamptz,
    ADD COLUMN acknowledged_by  text,
    ADD COLUMN resolved_at      timestamptz,
    ADD COLUMN resolved_by      text,
    ADD COLUMN cancelled_at     timestamptz,
    -- When the sweeper last published a notification that was committed but not fanned out.
    ADD COLUMN republished_at   timestamptz;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check CHECK (status IN
    ('pending', 'scheduled', 'sending', 'retrying', 'delivered', 'failed', 'suppressed', 'dead_lettered'));
-- Ids are derived from notification, recipient, channel and escalation level; the id is the key.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_notification_id_recipient_index_channel_key;
ALTER TABLE deliveries
    ADD COLUMN escalation_level  integer,
    -- When a delayed or held delivery is released to render.
    ADD COLUMN scheduled_for     timestamptz,
    ADD COLUMN digest_id         uuid;
CREATE INDEX deliveries_notification ON deliveries (notification_id);

CREATE TABLE timers (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    -- send_at: fan a notification out; release: render held deliveries;
    -- escalation: fan out a level; digest: close a digest and render it.
    kind             text NOT NULL CHECK (kind IN ('send_at', 'release', 'escalation', 'digest')),
    due_at           timestamptz NOT NULL,
    -- The stage to publish to and the message body.
    stage            text NOT NULL,
    body             jsonb NOT NULL,
    escalation_level integer,
    digest_id        uuid,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'fired', 'cancelled')),
    fired_at         timestamptz,
    -- What firing did, for the history the status API shows: sent, or why it was skipped.
    outcome          text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX timers_due ON timers (due_at) WHERE status = 'pending';
CREATE INDEX timers_notification ON timers (notification_id);

CREATE TABLE digests (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    digest_key    text NOT NULL,
    -- The recipient, by user id or address, and the channel the digest goes out on.
    recipient     text NOT NULL,
    channel       text NOT NULL,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closes_at     timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- At most one open digest per key, recipient and channel: concurrent events join it.
CREATE UNIQUE INDEX digests_one_open ON digests (tenant_id, digest_key, recipient, channel) WHERE status = 'open';

CREATE TABLE digest_items (
    digest_id        uuid NOT NULL REFERENCES digests (id) ON DELETE CASCADE,
    delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    notification_id  uuid NOT NULL,
    -- The render chunk item and content of this event, to render into the digest.
    item             jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (digest_id, delivery_id)
);
