-- Rate limits: each call a key let through in its current window (epoch seconds).
CREATE TABLE rate_hits (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX rate_hits_key_at ON rate_hits (key, at);
