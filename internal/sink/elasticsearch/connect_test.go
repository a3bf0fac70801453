package elasticsearch

import (
	"context"
	"net"
	"strings"
	"testing"
)

func TestNewConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := Config{URLs: []string{"http://tg:s3cret@" + addr}}
	s, err := New(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("New succeeded")
	}
	for _, want := range []string{"http://tg:xxxxx@" + addr, "connection refused", "is the cluster running"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestNewInvalidConfig(t *testing.T) {
	_, err := New(context.Background(), Config{Truncate: "drop"})
	if err == nil || !strings.Contains(err.Error(), "urls") || !strings.Contains(err.Error(), "truncate") {
		t.Errorf("err = %v, want it to name urls and truncate", err)
	}
}
