package field

import (
	"errors"
	"testing"
)

func TestPaths(t *testing.T) {
	for got, want := range map[string]string{
		Index("tables", 1):                 "tables[1]",
		Key("keys", "orders"):              "keys.orders",
		Key("keys", "public.orders"):       `keys["public.orders"]`,
		Join("", "dsn"):                    "dsn",
		Join("sources[0].postgres", "dsn"): "sources[0].postgres.dsn",
		Join("sources[0].postgres", ""):    "sources[0].postgres",
		Index(Key("keys", "public.a"), 0):  `keys["public.a"][0]`,
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestError(t *testing.T) {
	err := errors.Join(New("dsn", "required"), WithValue("tables[1]", "orders.", "bad name"))
	want := "dsn: required\ntables[1]: \"orders.\": bad name"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.Path != "dsn" {
		t.Errorf("errors.As: %+v", fe)
	}
}
