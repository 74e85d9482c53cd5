-- Call-log search by the last digits of a number (issue 14): "4567", "912 123 4567", "+98 912 123 4567" and
-- "0912 123 4567" all find +989121234567. Numbers are stored in E.164, so a digit fragment is a *suffix*;
-- reversed, a suffix is a prefix, which a plain b-tree answers with a range scan ("C" collation: byte order).
-- Chosen over pg_trgm: a b-tree on reverse() is exact for suffixes, a fraction of a trigram GIN's size and build
-- time on 10 M rows, and its cost does not grow with how common a short fragment's trigrams are.
CREATE INDEX IF NOT EXISTS calls_caller_reversed ON calls ((reverse(caller) COLLATE "C"));
CREATE INDEX IF NOT EXISTS calls_callee_reversed ON calls ((reverse(callee) COLLATE "C"));
