-- Rate limits: each call a key let through in its current window (epoch seconds, database clock).
CREATE TABLE {schema}.rate_hits (key text NOT NULL, at double precision NOT NULL);
CREATE INDEX rate_hits_key_at ON {schema}.rate_hits (key, at);
