-- The seed's steps 4 and 5: share the vehicle statistics with a third-party team (who use Spark)
-- under a role with grants, and mask the vehicle id for that role.
-- Apply with: lakehouse policy apply policies/iov_thirdparty.sql --project iov
-- (the seed grants SELECT on ods_vehicle_gps_raw; the table it masks and shares is the ADS table)

-- 4. Establish the cross-team role and grant query permissions.
CREATE ROLE thirdparty;
GRANT CreateInstance, List ON PROJECT iov TO ROLE thirdparty;
GRANT SELECT ON TABLE ads_vehicle_hourly_stat TO ROLE thirdparty;

ADD USER RAM$alice;
GRANT thirdparty TO RAM$alice;

-- 5. Enable data masking for the project, and mask the vehicle id: keep the first and the last
--    character, an asterisk for each character between.
setproject odps.data.masking.policy.enable=true;

CREATE DATA MASKING POLICY IF NOT EXISTS masking_vin
TO ROLE (thirdparty)
USING MASKED_STRING_UNMASKED_BA(1, 1);

APPLY DATA MASKING POLICY masking_vin BIND TO TABLE ads_vehicle_hourly_stat COLUMN vin;
