-- A notification names the instance that wrote the events (the `outbox.writer` setting
-- each instance gives its connections), so a relay skips its own: its process rang it
-- already. Unnamed writers (a connection without the setting) notify with ''.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', coalesce(current_setting('outbox.writer', true), ''));
    RETURN NULL;
END
$$;
