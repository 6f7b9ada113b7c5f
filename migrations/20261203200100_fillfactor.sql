-- A delivery and its attempt are each written once and then updated twice (claimed, then
-- finished), on columns no index holds. Room left on every page lets those updates stay on
-- the page (heap-only tuples), so they write no index entries.
ALTER TABLE deliveries SET (fillfactor = 70);
ALTER TABLE attempts SET (fillfactor = 80);
