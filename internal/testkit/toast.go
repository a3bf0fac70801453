package testkit

// ToastFunctions creates two SQL functions that make large, incompressible
// values, which PostgreSQL stores out of line (TOAST): md5_chain(seed, n)
// is n md5 digests as text (32·n bytes), md5_doc(seed, n) a jsonb document
// holding n digests and numbers a re-encoding would change (1.50, a decimal
// beyond float64). The same seed gives the same value.
const ToastFunctions = `
CREATE FUNCTION md5_chain(seed text, n int) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT string_agg(md5(seed || i), '' ORDER BY i) FROM generate_series(1, n) i $$;
CREATE FUNCTION md5_doc(seed text, n int) RETURNS jsonb LANGUAGE sql IMMUTABLE AS
  $$ SELECT jsonb_build_object('seed', seed, 'price', 1.50, 'big', 12345678901234567890.123456789,
       'chain', (SELECT jsonb_agg(md5(seed || i) ORDER BY i) FROM generate_series(1, n) i)) $$;
`
