-- Every query on deliveries names a delivery or a notification, so an index on the tenant
-- alone only misleads the planner: with one large tenant it chose to AND the whole tenant's
-- entries with the primary key lookup, a scan that grew with the table.
DROP INDEX IF EXISTS deliveries_tenant;
