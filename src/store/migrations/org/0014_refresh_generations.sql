-- Refresh-token families (SECURITY.md P11). A device's refresh tokens are
-- numbered: each carries its generation under the appliance's MAC, and the
-- device row keeps the generation of the one token that is current. A
-- token of an earlier generation, however many rotations ago, is then
-- known to be a superseded secret of this device, and presenting it
-- revokes the device. Existing devices start at generation 0 with the
-- token they hold, which is of the older form (no generation) and is still
-- accepted once, to move them to the numbered form.
ALTER TABLE devices ADD COLUMN refresh_generation INTEGER NOT NULL DEFAULT 0
    CHECK (refresh_generation >= 0);
