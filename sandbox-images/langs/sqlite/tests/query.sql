CREATE TABLE t (name TEXT, score INTEGER);
INSERT INTO t VALUES ('ada', 3), ('bob', 1), ('cy', 2);
SELECT name || ' ' || score FROM t ORDER BY score;
SELECT count(*), sum(score) FROM t;
