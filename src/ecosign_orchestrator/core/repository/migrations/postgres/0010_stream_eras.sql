-- The event stream is read in commit order: by the writing transaction's id (migration 0004).
-- A transaction id is a count of this server's transactions, so a database dumped and restored
-- elsewhere, or moved to another server, continues with a smaller count than the log's: new
-- events would sort before old ones, and a reader resuming from its last id would never see
-- them (nor would a reader from 0 see the old ones until the new count caught up).
--
-- An era numbers each stretch of the log written by one server. Events are read by
-- (era, transaction, id); the newest era is the only one with transactions still in progress.
-- When the server's count is found behind the log's (ensure_stream_era, called by every process
-- as it opens the store, and by `db migrate`), a new era begins: it sorts after everything
-- before it whatever the counts. The era is the column's default, so writing an event costs
-- nothing more; only the rare switch changes the default.
CREATE TABLE {schema}.stream_eras (
    era integer PRIMARY KEY,
    began_at timestamptz NOT NULL DEFAULT now(),
    -- the server's transaction count when the era began
    first_tx xid8 NOT NULL DEFAULT pg_current_xact_id()
);
INSERT INTO {schema}.stream_eras (era) VALUES (0);

ALTER TABLE {schema}.events ADD COLUMN era integer NOT NULL DEFAULT 0;
CREATE INDEX events_stream_order ON {schema}.events (era, tx, id);
DROP INDEX {schema}.events_commit_order;

-- Starts a new era if this server's transaction count is behind the newest era's events;
-- returns the era new events get. Runs as the schema's owner: the switch changes a default.
CREATE FUNCTION {schema}.ensure_stream_era() RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    newest_era integer;
    newest_tx xid8;
BEGIN
    SELECT max(era) INTO newest_era FROM {schema}.stream_eras;
    SELECT max(tx) INTO newest_tx FROM {schema}.events WHERE era = newest_era;
    IF newest_tx IS NULL OR newest_tx < pg_snapshot_xmax(pg_current_snapshot()) THEN
        RETURN newest_era;
    END IF;
    -- One switch at a time: every process opening the store calls this.
    LOCK TABLE {schema}.stream_eras IN EXCLUSIVE MODE;
    SELECT max(era) INTO newest_era FROM {schema}.stream_eras;
    SELECT max(tx) INTO newest_tx FROM {schema}.events WHERE era = newest_era;
    IF newest_tx IS NULL OR newest_tx < pg_snapshot_xmax(pg_current_snapshot()) THEN
        RETURN newest_era;
    END IF;
    newest_era := newest_era + 1;
    INSERT INTO {schema}.stream_eras (era) VALUES (newest_era);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN era SET DEFAULT %s', '{schema}.events', newest_era);
    RETURN newest_era;
END
$$;
