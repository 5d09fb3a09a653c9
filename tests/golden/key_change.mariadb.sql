CREATE TABLE items (id int PRIMARY KEY, name varchar(20), qty int);
INSERT INTO items VALUES (1, 'a', 10);
UPDATE items SET id = 2, qty = 11 WHERE id = 1;
