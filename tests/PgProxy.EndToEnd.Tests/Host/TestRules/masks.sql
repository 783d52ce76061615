-- what an analyst may and may not run against the masked customers table
SELECT id, email AS contact, card FROM customers;
SELECT upper(email) FROM customers;
SELECT right(card, 4) FROM customers;
SELECT lower(phone) FROM suppliers;
COPY customers TO STDOUT;
COPY (SELECT card FROM customers) TO STDOUT;
