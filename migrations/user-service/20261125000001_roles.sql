-- What a user may do: `user` acts on their own data, `admin` on everyone's. Every token
-- carries it. Users who signed up before roles existed are users.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user';
