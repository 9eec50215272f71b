-- A small demo data set for `npm start` on an empty database (never applied
-- anywhere else). Try: npm run token -- 1, then like post 1 or buy item 1.
INSERT INTO users (id, name, point_balance) VALUES
  (1, 'Alice', 50000),
  (2, 'Bob', 10000),
  (3, 'Carol', 0);

INSERT INTO posts (id, author_id, title) VALUES
  (1, 1, 'Hello from Alice'),
  (2, 1, 'Alice again'),
  (3, 2, 'Bob''s first post');

INSERT INTO items (id, name, price, stock) VALUES
  (1, 'Americano', 4500, 1000),
  (2, 'Latte', 5000, 1000),
  (3, 'Croissant', 3800, 200),
  (4, 'Bagel', 3200, 200),
  (5, 'Cheesecake', 6500, 50);
