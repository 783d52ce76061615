-- What a BI tool and an application send.
CREATE TABLE orders_copy (LIKE orders);
SELECT COUNT(DISTINCT "sessions"."visitor") AS visitors
FROM "sessions" WHERE note <> 'COUNT(DISTINCT "x"."visitor")';
SELECT * FROM legacy_orders WHERE id = 1 /* legacy_orders */;
DELETE FROM orders WHERE id = 1;
SELECT secret FROM secrets;
SELECT 1
