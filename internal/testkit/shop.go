package testkit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The shop schema: a few related tables with varied types, used by the
// demo, the end-to-end tests and the benchmarks.

// ShopTables are the shop tables with their key columns.
var ShopTables = []struct {
	Name string
	Key  []string
}{
	{"public.customers", []string{"id"}},
	{"public.products", []string{"sku"}},
	{"public.orders", []string{"id"}},
	{"public.order_items", []string{"order_id", "line"}},
}

// ShopSchema creates the shop tables (idempotent).
const ShopSchema = `
DO $$ BEGIN
  CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped', 'delivered', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE IF NOT EXISTS customers (
  id         bigint PRIMARY KEY,
  email      text NOT NULL,
  name       text,
  created_at timestamptz NOT NULL DEFAULT now(),
  balance    numeric(12,2),
  tags       text[],
  profile    jsonb,
  active     boolean NOT NULL DEFAULT true
);
CREATE TABLE IF NOT EXISTS products (
  sku      text PRIMARY KEY,
  title    text NOT NULL,
  price    numeric(10,2) NOT NULL,
  weight   real,
  attrs    jsonb,
  image    bytea,
  ref      uuid,
  released date
);
CREATE TABLE IF NOT EXISTS orders (
  id          bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  status      order_status NOT NULL,
  total       numeric(14,2),
  placed_at   timestamp NOT NULL,
  ship_window interval,
  notes       text
);
CREATE TABLE IF NOT EXISTS order_items (
  order_id   bigint NOT NULL,
  line       int NOT NULL,
  sku        text NOT NULL,
  qty        int NOT NULL,
  unit_price numeric(10,2) NOT NULL,
  PRIMARY KEY (order_id, line)
);`

// LoadShop fills the shop tables with about `rows` rows in total (in SQL,
// fast), deterministic for a given size.
func LoadShop(ctx context.Context, conn *pgx.Conn, rows int) error {
	customers := max(rows/12, 1)
	products := max(rows/50, 1)
	orders := max(rows*3/10, 1)
	items := max(rows-customers-products-orders, 1)
	stmts := []string{
		ShopSchema,
		fmt.Sprintf(`INSERT INTO customers SELECT g, 'user' || g || '@example.com', 'Customer ' || g,
			timestamptz '2020-01-01 00:00:00+00' + g * interval '17 minutes 3.25 seconds',
			round((g %% 100000) / 7.0, 2), ARRAY['tag' || (g %% 5), 'vip' || (g %% 2)],
			jsonb_build_object('age', 18 + g %% 60, 'city', 'City ' || (g %% 97), 'prefs', jsonb_build_array('p' || (g %% 3), 'x')),
			g %% 10 <> 0
			FROM generate_series(1, %d) g ON CONFLICT DO NOTHING`, customers),
		fmt.Sprintf(`INSERT INTO products SELECT 'SKU-' || lpad(g::text, 6, '0'), 'Product ' || g || ' «ünïcødé»',
			(g %% 1000) + 0.99, (g %% 50) / 3.0, jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + g %% 3], 'size', g %% 10),
			decode(md5(g::text), 'hex'), md5('p' || g)::uuid, date '2015-01-01' + g
			FROM generate_series(1, %d) g ON CONFLICT DO NOTHING`, products),
		fmt.Sprintf(`INSERT INTO orders SELECT g, 1 + g %% %d, (ARRAY['new','paid','shipped','delivered','cancelled']::order_status[])[1 + g %% 5],
			round((g %% 5000) * 1.37, 2), timestamp '2021-06-01 12:00:00' + g * interval '1 minute 0.5 seconds',
			make_interval(days => g %% 7, hours => g %% 24), CASE WHEN g %% 3 = 0 THEN NULL ELSE 'note ' || g END
			FROM generate_series(1, %d) g ON CONFLICT DO NOTHING`, customers, orders),
		fmt.Sprintf(`INSERT INTO order_items SELECT 1 + (g - 1) / 2, 1 + (g - 1) %% 2, 'SKU-' || lpad((1 + g %% %d)::text, 6, '0'), 1 + g %% 4, (g %% 1000) + 0.49
			FROM generate_series(1, %d) g ON CONFLICT DO NOTHING`, products, items),
		"ANALYZE customers", "ANALYZE products", "ANALYZE orders", "ANALYZE order_items",
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("loading the shop data: %w", err)
		}
	}
	return nil
}

// Workload generates random changes to the shop tables: single-row and
// multi-row transactions, a row updated twice in one transaction, deletes
// and re-inserts of the same key. Deterministic for a seed.
type Workload struct {
	rnd    *rand.Rand
	nextID int64
	// Ops counts the row changes made.
	Ops int
}

// NewWorkload returns a workload seeded with seed.
func NewWorkload(seed uint64) *Workload {
	return &Workload{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), nextID: 10_000_000 + int64(seed%1000)*1_000_000}
}

// Step runs one random transaction.
func (w *Workload) Step(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after commit: no-op
	n := 1
	if w.rnd.IntN(4) == 0 {
		n = 2 + w.rnd.IntN(20)
	}
	for range n {
		if err := w.Op(ctx, tx); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Op makes one random change in tx (a caller's transaction: long ones,
// ones that roll back).
func (w *Workload) Op(ctx context.Context, tx pgx.Tx) error {
	w.Ops++
	r := w.rnd.IntN(100)
	var sql string
	var args []any
	switch {
	case r < 25:
		w.nextID++
		sql = `INSERT INTO customers (id, email, name, balance, tags, profile) VALUES ($1, $2, $3, $4, $5, $6)`
		args = []any{w.nextID, fmt.Sprintf("new%d@example.com", w.nextID), "New " + strings.Repeat("é", w.rnd.IntN(4)),
			fmt.Sprintf("%d.%02d", w.rnd.IntN(100000), w.rnd.IntN(100)), []string{"t" + fmt.Sprint(w.rnd.IntN(9))},
			fmt.Sprintf(`{"n": %d, "nested": {"k": [1, 2, %d]}}`, w.rnd.IntN(1000), w.rnd.IntN(1000))}
	case r < 45:
		sql = `UPDATE orders SET status = (ARRAY['new','paid','shipped','delivered','cancelled']::order_status[])[1 + $2::int % 5], total = total + 1.01 WHERE id = $1`
		args = []any{1 + w.rnd.Int64N(1000), w.rnd.IntN(5)}
	case r < 55:
		// The same row twice in one transaction: the second value must win.
		id := 1 + w.rnd.Int64N(1000)
		if _, err := tx.Exec(ctx, `UPDATE customers SET name = $2 WHERE id = $1`, id, fmt.Sprint("first ", w.rnd.IntN(1000))); err != nil {
			return err
		}
		sql = `UPDATE customers SET name = $2, balance = coalesce(balance, 0) + 1 WHERE id = $1`
		args = []any{id, fmt.Sprint("second ", w.rnd.IntN(1000))}
	case r < 65:
		sql = `DELETE FROM order_items WHERE order_id = $1`
		args = []any{1 + w.rnd.Int64N(2000)}
	case r < 75:
		// Delete then re-insert one key.
		id := 1 + w.rnd.Int64N(2000)
		if _, err := tx.Exec(ctx, `DELETE FROM order_items WHERE order_id = $1 AND line = 1`, id); err != nil {
			return err
		}
		sql = `INSERT INTO order_items VALUES ($1, 1, 'SKU-000001', $2, 9.99) ON CONFLICT (order_id, line) DO UPDATE SET qty = excluded.qty`
		args = []any{id, 1 + w.rnd.IntN(9)}
	case r < 85:
		sql = `UPDATE products SET price = price + 0.01, attrs = attrs || jsonb_build_object('v', $2::int) WHERE sku = $1`
		args = []any{fmt.Sprintf("SKU-%06d", 1+w.rnd.IntN(100)), w.rnd.IntN(100)}
	case r < 92:
		w.nextID++
		sql = `INSERT INTO orders VALUES ($1, $2, 'new', $3, now()::timestamp, interval '2 days', 'live')`
		args = []any{w.nextID, 1 + w.rnd.Int64N(1000), fmt.Sprintf("%d.%02d", w.rnd.IntN(1000), w.rnd.IntN(100))}
	default:
		sql = `DELETE FROM customers WHERE id = (SELECT id FROM customers WHERE id > $1 ORDER BY id LIMIT 1)`
		args = []any{w.rnd.Int64N(1000)}
	}
	_, err := tx.Exec(ctx, sql, args...)
	return err
}
