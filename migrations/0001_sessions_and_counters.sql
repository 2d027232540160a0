-- Valid on SQLite and PostgreSQL alike. Nothing here can hold a message or a platform id:
-- sessions are keyed by a keyed pseudonym, events by a keyed hash, counters by day.

CREATE TABLE sessions (
    pseudonym      TEXT    PRIMARY KEY,  -- "v<pepper version>." + HMAC-SHA256 hex
    pepper_version INTEGER NOT NULL,
    state          TEXT    NOT NULL,     -- engine session: flow positions, scores, language, counts
    expires_at     BIGINT  NOT NULL      -- unix seconds, rounded up to the minute
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE seen_events (
    event_key  TEXT   PRIMARY KEY,       -- HMAC of the platform's event id
    expires_at BIGINT NOT NULL
);
CREATE INDEX seen_events_expires_at ON seen_events (expires_at);

CREATE TABLE usage_counts (
    day      TEXT   NOT NULL,            -- YYYY-MM-DD (UTC); never a time of day
    flow     TEXT   NOT NULL,            -- flow or instrument id, '' for none
    event    TEXT   NOT NULL,            -- session_started, band, routed, crisis, ...
    language TEXT   NOT NULL,
    detail   TEXT   NOT NULL,            -- band, service kind or crisis source, '' for none
    count    BIGINT NOT NULL,
    PRIMARY KEY (day, flow, event, language, detail)
);
