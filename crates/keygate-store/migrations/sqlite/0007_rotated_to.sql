-- The successor of a token that was rotated out. Once set, the token's expiry (the end of its
-- grace period) can no longer be changed, so a rotated-out token cannot outlive the rotation.
ALTER TABLE tokens ADD COLUMN rotated_to TEXT;
