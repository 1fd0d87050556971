-- A user's payments, newest first: what GET /api/payments lists for a signed-in user.
CREATE INDEX payments_user ON payments (user_id, created_at_ms);
