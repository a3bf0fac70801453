package testkit

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
)

// ConnectSession opens a connection with tidegate's session settings, for
// programs (demo, bench) that have no testing.TB.
func ConnectSession(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	for k, v := range pgdecode.SessionParams {
		cc.RuntimeParams[k] = v
	}
	return pgx.ConnectConfig(ctx, cc)
}

// DSNWithDatabase returns a URL-form dsn pointing at database db.
func DSNWithDatabase(dsn, db string) string {
	i := strings.LastIndex(dsn, "/")
	q := ""
	if j := strings.Index(dsn[i:], "?"); j >= 0 {
		q = dsn[i+j:]
	}
	return dsn[:i+1] + db + q
}
