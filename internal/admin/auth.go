package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// ErrOpenAPI: the admin API would listen beyond loopback without a token.
var ErrOpenAPI = errors.New("the admin API needs a token")

// checkExposure refuses an admin address reachable from other hosts
// without a token: the API changes pipelines and dead letters.
func checkExposure(addr, token string) error {
	if token != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin address %q (admin.listen): %w", addr, err)
	}
	if isLoopback(host) {
		return nil
	}
	return fmt.Errorf("%w: admin.listen %s is reachable from other hosts and admin.token is not set; set admin.token (e.g. token: ${TIDEGATE_TOKEN}, a long random string) or listen on 127.0.0.1", ErrOpenAPI, addr)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireToken lets a request through only with "Authorization: Bearer
// <token>". The comparison is constant-time (of hashes, so the token's
// length does not leak either). RPCs get the error in their protocol's
// shape (Connect: HTTP 401, gRPC: status Unauthenticated).
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	errw := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if ok && subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		msg := "missing or wrong admin token: send \"Authorization: Bearer <admin.token>\" (tidegate CLI: --token or TIDEGATE_ADMIN_TOKEN)"
		w.Header().Set("WWW-Authenticate", `Bearer realm="tidegate"`)
		if errw.IsSupported(r) {
			_ = errw.Write(w, r, connect.NewError(connect.CodeUnauthenticated, errors.New(msg)))
			return
		}
		http.Error(w, msg, http.StatusUnauthorized)
	})
}
