-- Asynchronous provinces (DOMAIN.md section 8, our profile): a 2207 accepted with
-- ord_stas "processing" waits here until it is processed, by the same settlement code
-- as a synchronous one, and keeps its outcome for 6301 and the callback. The msgid log
-- holds the acceptance while processing, and the final answer afterwards.
CREATE TABLE async_settlements (
    msgid             text PRIMARY KEY REFERENCES msgid_log (msgid),
    province          text NOT NULL CHECK (province ~ '^[0-9]{2}0000$'),
    infno             text NOT NULL CHECK (infno = '2207'),
    insuplc_admdvs    text NOT NULL CHECK (insuplc_admdvs ~ '^[0-9]{6}$'),
    mdtrtarea_admvs   text NOT NULL CHECK (mdtrtarea_admvs ~ '^[0-9]{6}$'),
    fixmedins_code    text NOT NULL,
    input             jsonb NOT NULL,          -- the 2207 input as received
    received_at       timestamptz NOT NULL,
    due_at            timestamptz NOT NULL,    -- when processing is to start
    state             text NOT NULL DEFAULT 'processing'
                      CHECK (state IN ('processing', 'settled', 'failed')),
    setl_id           text UNIQUE REFERENCES settlements (setl_id),
    err_code          integer CHECK (err_code < 0),
    err_msg           text,
    finished_at       timestamptz,
    CHECK ((state = 'processing' AND setl_id IS NULL AND err_code IS NULL AND finished_at IS NULL)
        OR (state = 'settled' AND setl_id IS NOT NULL AND err_code IS NULL AND finished_at IS NOT NULL)
        OR (state = 'failed' AND setl_id IS NULL AND err_code IS NOT NULL AND finished_at IS NOT NULL))
);
-- What is still to do, e.g. after a restart.
CREATE INDEX async_settlements_processing ON async_settlements (due_at) WHERE state = 'processing';
