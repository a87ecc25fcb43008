-- Waits (up to 10 s) until a query returns true: the worker runs after commit.
-- A session's own function (pg_temp), made again after a \connect.
CREATE FUNCTION pg_temp.wait_until(condition text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    FOR i IN 1..200 LOOP
        EXECUTE condition INTO ok;
        IF ok THEN RETURN 'done after ' || (i - 1) * 50 || ' ms'; END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RAISE EXCEPTION 'timed out waiting for: %', condition;
END $$;
