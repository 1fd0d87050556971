-- The units a PUT made available plus those held by orders at that moment: reserving and
-- releasing move units between available and reserved, so available + reserved must
-- always equal it (the invariant checker compares them).
ALTER TABLE products ADD COLUMN stocked BIGINT NOT NULL DEFAULT 0;
UPDATE products SET stocked = available + reserved;
